"""Hand-built depth scenes for the pose tests: a shelf, people with arms, ceiling cameras.

Built on locator_scenes (same ray casting and D435 noise): a shelf is boxes (back,
sides, top, boards), a person the locator's body cylinder and head sphere plus arms as
chains of small spheres from the shoulder through the elbow to the hand.
"""

from __future__ import annotations

import math

from locator_scenes import Box, camera_pose, intrinsics, person, render_depth, Sphere
import numpy as np

from go_store_nodes.core.store import Bin, Shelf
from go_store_nodes.core.transforms import rotation_from_rpy, Transform

# One shelf whose front edge runs along y = SHELF_Y; shoppers stand at y < SHELF_Y.
SHELF_X = 2.0
SHELF_Y = 3.0
SHELF_WIDTH = 2.0
SHELF_DEPTH = 0.5
SHELF_HEIGHT = 1.9
LEVELS = (0.4, 0.9, 1.3)
ARM_RADIUS = 0.045


def shelf() -> Shelf:
    """Return a 2 m shelf whose front faces the aisle at y < SHELF_Y; bins as in a store.

    Shelf frame: origin at the middle of the front edge, x to the right of a shopper
    facing it (map +x), y into the shelf (map +y), z up.
    """
    pose = Transform(rotation_from_rpy(0.0, 0.0, 0.0), np.array([SHELF_X, SHELF_Y, 0.0]))
    bins = []
    for level, (z0, z1) in enumerate(zip(LEVELS[:-1], LEVELS[1:], strict=True)):
        for half, (x0, x1) in enumerate(((-1.0, 0.0), (0.0, 1.0))):
            bins.append(Bin(f'bin_{level}{half}', 'shelf_a', f'lc_{level}{half}',
                            (x0, 0.02, z0), (x1, SHELF_DEPTH - 0.02, z1), ('sku',)))
    return Shelf('shelf_a', pose, (SHELF_WIDTH, SHELF_DEPTH, SHELF_HEIGHT), tuple(bins))


def shelf_boxes():
    """Return the shelf carcass as boxes (map)."""
    x0, x1 = SHELF_X - SHELF_WIDTH / 2, SHELF_X + SHELF_WIDTH / 2
    y0, y1 = SHELF_Y, SHELF_Y + SHELF_DEPTH
    boxes = [Box((x0, y1 - 0.02, 0.0), (x1, y1, SHELF_HEIGHT)),
             Box((x0, y0, 0.0), (x0 + 0.02, y1, SHELF_HEIGHT)),
             Box((x1 - 0.02, y0, 0.0), (x1, y1, SHELF_HEIGHT)),
             Box((x0, y0, SHELF_HEIGHT - 0.025), (x1, y1, SHELF_HEIGHT))]
    boxes += [Box((x0, y0, z - 0.025), (x1, y1, z)) for z in LEVELS]
    boxes.append(Box((x0, y0, 0.0), (x1, y0 + 0.02, LEVELS[0] - 0.025)))
    return tuple(boxes)


def bin_point(bin_: Bin, depth=0.25, above_floor=0.15):
    """Return a map point in a bin: ``depth`` behind its front, ``above_floor`` up."""
    x = 0.5 * (bin_.min_m[0] + bin_.max_m[0])
    return np.array([SHELF_X + x, SHELF_Y + bin_.min_m[1] + depth,
                     bin_.min_m[2] + above_floor])


def _chain(a, b, radius=ARM_RADIUS, step=0.03):
    a, b = np.asarray(a, float), np.asarray(b, float)
    count = max(2, int(math.ceil(np.linalg.norm(b - a) / step)) + 1)
    return tuple(Sphere(*(a + (b - a) * t), radius) for t in np.linspace(0.0, 1.0, count))


def reaching_person(x, y, height=1.75, left_target=None, right_target=None,
                    shoulder_half=0.21):
    """Return a person at (x, y) facing +y (the shelf), each hand given at its target.

    Facing +y, the person's left is map -x. A hand without a target hangs by the side.
    Returns (shapes, {'left': hand point or None, 'right': ...}).
    """
    shapes = list(person(x, y, height, shoulder_radius=0.15))
    shoulder_z = 0.818 * height
    hands = {}
    for side, target, sign in (('left', left_target, -1.0), ('right', right_target, 1.0)):
        shoulder = np.array([x + sign * shoulder_half, y, shoulder_z])
        if target is None:
            elbow = shoulder + [sign * 0.04, 0.0, -0.3]
            hand = elbow + [sign * 0.02, 0.03, -0.28]
            hands[side] = None
        else:
            hand = np.asarray(target, float)
            elbow = shoulder + 0.5 * (hand - shoulder) + [sign * 0.06, 0.0, -0.08]
            hands[side] = hand
        shapes += _chain(shoulder, elbow) + _chain(elbow, hand)
    return tuple(shapes), hands


def cameras(width=424, height=240):
    """Return two ceiling cameras in the aisle, tilted towards the shelf, and their intrinsics."""
    k = intrinsics(width, height)
    return {'cam_a': (k, camera_pose(SHELF_X - 1.0, SHELF_Y - 1.6, 3.2, tilt_deg=35.0)),
            'cam_b': (k, camera_pose(SHELF_X + 1.0, SHELF_Y - 1.6, 3.2, tilt_deg=35.0))}


def render(camera, shapes, seed=0):
    """Return the depth (m) of the shelf and the shapes as one camera sees it."""
    k, pose = camera
    return render_depth(k, pose, shelf_boxes() + tuple(shapes), seed=seed)
