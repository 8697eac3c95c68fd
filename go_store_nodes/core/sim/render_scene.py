"""What the camera renderer draws: the store as boxes, people as capsules, and their colours.

The static store (walls, shelf carcasses, the products standing in each bin) is a list of
oriented ``SceneBox``es built once from the store description. A person is a set of
capsules (a sphere is a capsule of length zero) built from a ``BodyState``'s joints; the
items they hold are boxes of their catalog size. Colours are linear-ish sRGB 0..255 before
shading; ``shade`` applies a fixed light from above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from ..store import Appearance, Product, StoreDescription
from ..transforms import Transform

FloatArray = NDArray[np.float64]

STRUCTURE_RGB = (118, 124, 134)     # painted steel shelving
WALL_RGB = (226, 222, 212)
FLOOR_RGB = (202, 202, 198)
FLOOR_GROUT_RGB = (160, 160, 156)
OUTSIDE_FLOOR_RGB = (120, 120, 118)
SHOE_RGB = (45, 42, 40)
HAIR_RGB = ((58, 44, 34), (96, 70, 46), (150, 118, 78), (128, 126, 122), (70, 50, 36))

FLOOR_TILE_M = 0.6
FLOOR_GROUT_M = 0.008
WALL_HEIGHT_M = 2.5
WALL_THICKNESS_M = 0.1
PANEL_M = 0.02          # shelf side and back panel thickness
BOARD_M = 0.025         # shelf board thickness
PRODUCT_GAP_M = 0.01

# Light from above, a little from the south-east; ambient + Lambert.
LIGHT_DIRECTION = np.array([0.25, -0.2, 1.0]) / np.linalg.norm([0.25, -0.2, 1.0])
AMBIENT = 0.5
DIFFUSE = 0.55

# Body model: capsule radii (metres).
HEAD_RADIUS_M = 0.11
NECK_RADIUS_M = 0.055
TORSO_RADIUS_M = 0.12
SHOULDER_RADIUS_M = 0.07
FLANK_RADIUS_M = 0.08
HIP_HALF_WIDTH_M = 0.09
HIP_RADIUS_M = 0.095
THIGH_RADIUS_M = 0.075
SHIN_RADIUS_M = 0.055
FOOT_RADIUS_M = 0.045
FOOT_LENGTH_M = 0.13
UPPER_ARM_RADIUS_M = 0.05
FOREARM_RADIUS_M = 0.04
HAND_RADIUS_M = 0.05
HOLDING_HAND_RADIUS_M = 0.03   # a hand closed round an item, so the item shows

# Capsule kinds: how a capsule is coloured.
KIND_PLAIN = 0
KIND_HEAD = 1       # hair on top and at the back, skin on the face


@dataclass(frozen=True, eq=False)
class SceneBox:
    """An oriented box: centre and rotation in map, half extents, colours and pattern."""

    center: FloatArray          # (3,)
    rotation: FloatArray        # (3, 3) R_map_box
    half: FloatArray            # (3,)
    color_rgb: tuple[int, int, int]
    accent_rgb: tuple[int, int, int]
    pattern: str                # solid, band, label, window, dots
    item_pitch_m: float = 0.0   # > 0: items one behind the other along box y (top seams)

    @property
    def bounding_radius(self) -> float:
        """Return the radius of the sphere around the box."""
        return float(np.linalg.norm(self.half))


def box_from_extent(t_map_frame: Transform, low: Sequence[float], high: Sequence[float],
                    color_rgb: tuple[int, int, int],
                    accent_rgb: tuple[int, int, int] | None = None, pattern: str = 'solid',
                    item_pitch_m: float = 0.0) -> SceneBox:
    """Build a box given by its min/max corners in some frame posed at ``t_map_frame``."""
    lo = np.asarray(low, dtype=np.float64)
    hi = np.asarray(high, dtype=np.float64)
    center = t_map_frame.apply((lo + hi) / 2.0)
    return SceneBox(np.asarray(center, dtype=np.float64),
                    np.array(t_map_frame.rotation, dtype=np.float64), (hi - lo) / 2.0,
                    color_rgb, accent_rgb or color_rgb, pattern, item_pitch_m)


def store_boxes(store: StoreDescription, walls: bool = True) -> list[SceneBox]:
    """Build every static box: walls, shelf carcasses and the products in the bins."""
    boxes: list[SceneBox] = []
    if walls:
        width, depth = store.size_m
        t, h = WALL_THICKNESS_M, WALL_HEIGHT_M
        ident = Transform.identity()
        for low, high in (((-t, -t, 0.0), (width + t, 0.0, h)),
                          ((-t, depth, 0.0), (width + t, depth + t, h)),
                          ((-t, 0.0, 0.0), (0.0, depth, h)),
                          ((width, 0.0, 0.0), (width + t, depth, h))):
            boxes.append(box_from_extent(ident, low, high, WALL_RGB))
    for shelf in store.shelves:
        boxes.extend(_shelf_boxes(shelf.t_map_shelf, shelf.size_m,
                                  [(b.min_m, b.max_m, b.skus) for b in shelf.bins],
                                  store.catalog))
    return boxes


def _shelf_boxes(t_map_shelf: Transform, size_m: Sequence[float],
                 bins: Iterable[tuple[Sequence[float], Sequence[float], Sequence[str]]],
                 catalog: Mapping[str, Product]) -> list[SceneBox]:
    """Build the carcass (back, sides, top, boards, kick plate) and products of a shelf."""
    sx, sy, sz = (float(v) for v in size_m)
    x0, x1 = -sx / 2.0, sx / 2.0
    bins = list(bins)
    s = STRUCTURE_RGB
    parts = [
        ((x0, sy - PANEL_M, 0.0), (x1, sy, sz)),                     # back panel
        ((x0, 0.0, 0.0), (x0 + PANEL_M, sy, sz)),                    # left side
        ((x1 - PANEL_M, 0.0, 0.0), (x1, sy, sz)),                    # right side
        ((x0, 0.0, sz - BOARD_M), (x1, sy, sz)),                     # top
    ]
    levels = sorted({round(float(b[0][2]), 4) for b in bins})
    lowest = levels[0] if levels else sz
    if lowest > BOARD_M:
        parts.append(((x0, 0.0, 0.0), (x1, PANEL_M, lowest - BOARD_M)))   # kick plate
    for z in levels:
        if z > BOARD_M:
            parts.append(((x0 + PANEL_M, 0.0, z - BOARD_M), (x1 - PANEL_M, sy - PANEL_M, z)))
    boxes = [box_from_extent(t_map_shelf, lo, hi, s) for lo, hi in parts]
    for low, high, skus in bins:
        boxes.extend(_bin_products(t_map_shelf, low, high, [catalog[k] for k in skus]))
    return boxes


def _bin_products(t_map_shelf: Transform, low: Sequence[float], high: Sequence[float],
                  products: Sequence[Product]) -> list[SceneBox]:
    """Fill a bin with rows of products: each SKU gets an equal share of its width.

    A row (one product column from the front to the back of the bin) is one box with the
    product's facing width and height; seams on its top show the single items.
    """
    boxes: list[SceneBox] = []
    if not products:
        return boxes
    section = (high[0] - low[0]) / len(products)
    for index, product in enumerate(products):
        look: Appearance = product.appearance
        width, item_depth, height = look.size_m
        height = min(height, high[2] - low[2] - 0.03)
        x_start = low[0] + index * section + PRODUCT_GAP_M
        x_end = low[0] + (index + 1) * section - PRODUCT_GAP_M
        columns = max(1, int((x_end - x_start + PRODUCT_GAP_M) // (width + PRODUCT_GAP_M)))
        width = min(width, x_end - x_start)
        used = columns * width + (columns - 1) * PRODUCT_GAP_M
        x = x_start + (x_end - x_start - used) / 2.0
        for _ in range(columns):
            boxes.append(box_from_extent(
                t_map_shelf, (x, low[1] + 0.005, low[2]), (x + width, high[1] - 0.01,
                                                          low[2] + height),
                look.color_rgb, look.accent_rgb, look.pattern, item_depth))
            x += width + PRODUCT_GAP_M
    return boxes


def held_item_box(appearance: Appearance, position: Sequence[float]) -> SceneBox:
    """Build a held item: an upright map-aligned box of the product's size at position."""
    half = np.asarray(appearance.size_m, dtype=np.float64) / 2.0
    return SceneBox(np.asarray(position, dtype=np.float64).reshape(3), np.eye(3), half,
                    appearance.color_rgb, appearance.accent_rgb, appearance.pattern)


PATTERNS = ('solid', 'band', 'label', 'window', 'dots')


@dataclass(frozen=True, eq=False)
class Boxes:
    """A batch of oriented boxes (structure of arrays) for vectorised drawing."""

    center: FloatArray              # (K, 3)
    rotation: FloatArray            # (K, 3, 3) R_map_box
    half: FloatArray                # (K, 3)
    rgb: FloatArray                 # (K, 3)
    accent: FloatArray              # (K, 3)
    pattern: NDArray[np.int64]      # (K,) index into PATTERNS (unknown: solid)
    item_pitch_m: FloatArray        # (K,)

    def __len__(self) -> int:
        """Return the number of boxes."""
        return len(self.half)

    @staticmethod
    def of(boxes: Sequence[SceneBox]) -> Boxes:
        """Batch scene boxes."""
        if not boxes:
            z3 = np.zeros((0, 3))
            return Boxes(z3, np.zeros((0, 3, 3)), z3, z3, z3, np.zeros(0, dtype=np.int64),
                         np.zeros(0))
        return Boxes(
            np.array([b.center for b in boxes], dtype=np.float64),
            np.array([b.rotation for b in boxes], dtype=np.float64),
            np.array([b.half for b in boxes], dtype=np.float64),
            np.array([b.color_rgb for b in boxes], dtype=np.float64),
            np.array([b.accent_rgb for b in boxes], dtype=np.float64),
            np.array([PATTERNS.index(b.pattern) if b.pattern in PATTERNS else 0
                      for b in boxes], dtype=np.int64),
            np.array([b.item_pitch_m for b in boxes], dtype=np.float64))


def box_surface_rgb(boxes: Boxes, owner: NDArray[np.int64], local: FloatArray,
                    axis: NDArray[np.int64]) -> FloatArray:
    """Return the unshaded colour (N, 3) of boxes ``owner`` at box-frame points on ``axis``."""
    rgb = boxes.rgb[owner].copy()
    if len(owner) == 0:
        return rgb
    half = boxes.half[owner]
    pattern = boxes.pattern[owner]
    fz = (local[:, 2] + half[:, 2]) / (2.0 * half[:, 2])       # 0 bottom .. 1 top
    # Along the face: x on faces facing +-y, y on faces facing +-x.
    along = np.where(axis == 1, local[:, 0] / (2.0 * half[:, 0]),
                     local[:, 1] / (2.0 * half[:, 1])) + 0.5
    side = axis != 2
    band = side & (fz > 0.38) & (fz < 0.66)
    label = side & (fz > 0.3) & (fz < 0.72) & (along > 0.12) & (along < 0.88)
    window = side & (fz > 0.5) & (fz < 0.82) & (along > 0.28) & (along < 0.72)
    cell = 0.03
    u = np.where(axis == 2, local[:, 0], along * 2.0 * half[:, 0])
    w = np.where(axis == 2, local[:, 1], local[:, 2])
    du = np.mod(u, cell) - cell / 2.0
    dw = np.mod(w, cell) - cell / 2.0
    dots = du * du + dw * dw < (0.3 * cell) ** 2
    mask = np.choose(pattern, [np.zeros(len(owner), dtype=bool), band, label, window, dots])
    rgb[mask] = boxes.accent[owner][mask]
    # Seams between the items standing one behind the other (seen on the top).
    pitch = boxes.item_pitch_m[owner]
    with np.errstate(divide='ignore', invalid='ignore'):
        seam = (axis == 2) & (pitch > 0.0) & (
            np.mod(local[:, 1] + half[:, 1], np.where(pitch > 0.0, pitch, 1.0)) < 0.006)
    rgb[seam] *= 0.55
    return rgb


def floor_rgb(points: FloatArray, store_size_m: tuple[float, float]) -> FloatArray:
    """Return the unshaded floor colour (N, 3): light tiles and grout, darker outside."""
    x, y = points[:, 0], points[:, 1]
    tx = np.floor(x / FLOOR_TILE_M)
    ty = np.floor(y / FLOOR_TILE_M)
    # A stable per-tile brightness variation.
    hashed = np.mod(np.sin(tx * 12.9898 + ty * 78.233) * 43758.5453, 1.0)
    rgb = np.asarray(FLOOR_RGB, dtype=np.float64) + (hashed[:, None] - 0.5) * 10.0
    gx = np.mod(x, FLOOR_TILE_M)
    gy = np.mod(y, FLOOR_TILE_M)
    grout = (gx < FLOOR_GROUT_M) | (gy < FLOOR_GROUT_M)
    rgb[grout] = FLOOR_GROUT_RGB
    width, depth = store_size_m
    outside = (x < 0.0) | (y < 0.0) | (x > width) | (y > depth)
    rgb[outside] = OUTSIDE_FLOOR_RGB
    return np.asarray(rgb, dtype=np.float64)


def shade(rgb: FloatArray, normals: FloatArray) -> FloatArray:
    """Apply the fixed ambient + Lambert light to colours (N, 3) with unit normals (N, 3)."""
    lambert = np.clip(normals @ LIGHT_DIRECTION, 0.0, 1.0)
    return np.asarray(rgb * (AMBIENT + DIFFUSE * lambert)[:, None], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Capsules:
    """A batch of capsules (spheres when a == b) with their colouring."""

    a: FloatArray               # (K, 3)
    b: FloatArray               # (K, 3)
    radius: FloatArray          # (K,)
    rgb: FloatArray             # (K, 3) main colour
    rgb2: FloatArray            # (K, 3) second colour (hair for heads)
    kind: NDArray[np.int64]     # (K,) KIND_*
    forward: FloatArray         # (K, 3) the person's facing direction (heads' faces)

    def __len__(self) -> int:
        """Return the number of capsules."""
        return len(self.radius)

    @staticmethod
    def concatenate(parts: Sequence[Capsules]) -> Capsules:
        """Join batches."""
        if not parts:
            z3 = np.zeros((0, 3))
            return Capsules(z3, z3, np.zeros(0), z3, z3, np.zeros(0, dtype=np.int64), z3)
        return Capsules(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ('a', 'b', 'radius', 'rgb', 'rgb2', 'kind', 'forward')))


def hair_rgb(person_id: int) -> tuple[int, int, int]:
    """Return a stable hair colour for a person."""
    return HAIR_RGB[(int(person_id) * 7 + 3) % len(HAIR_RGB)]


def body_capsules(body: Any) -> Capsules:
    """Build the capsules of one ``BodyState`` (duck-typed: person_id, joints, *_rgb, held)."""
    j = {name: np.asarray(value, dtype=np.float64).reshape(3)
         for name, value in body.joints.items()}
    right = j['right_shoulder'] - j['left_shoulder']
    right[2] = 0.0
    norm = float(np.linalg.norm(right))
    right = right / norm if norm > 1e-6 else np.array([1.0, 0.0, 0.0])
    forward = np.cross([0.0, 0.0, 1.0], right)
    l_hip = j['pelvis'] - HIP_HALF_WIDTH_M * right
    r_hip = j['pelvis'] + HIP_HALF_WIDTH_M * right
    shirt, trousers, skin = body.shirt_rgb, body.trousers_rgb, body.skin_rgb

    def foot(name: str) -> tuple[np.ndarray, np.ndarray]:
        heel = j[name].copy()
        heel[2] = max(heel[2], FOOT_RADIUS_M)
        return heel, heel + FOOT_LENGTH_M * forward

    lf, rf = foot('left_foot'), foot('right_foot')
    holding = {item.hand for item in body.held}
    hand_r = {side: HOLDING_HAND_RADIUS_M if side in holding else HAND_RADIUS_M
              for side in ('left', 'right')}
    segments = [
        (j['head'], j['head'], HEAD_RADIUS_M, skin, KIND_HEAD),
        (j['neck'], j['head'], NECK_RADIUS_M, skin, KIND_PLAIN),
        (j['neck'], j['pelvis'], TORSO_RADIUS_M, shirt, KIND_PLAIN),
        (j['left_shoulder'], j['right_shoulder'], SHOULDER_RADIUS_M, shirt, KIND_PLAIN),
        (j['left_shoulder'], l_hip, FLANK_RADIUS_M, shirt, KIND_PLAIN),
        (j['right_shoulder'], r_hip, FLANK_RADIUS_M, shirt, KIND_PLAIN),
        (l_hip, r_hip, HIP_RADIUS_M, trousers, KIND_PLAIN),
        (l_hip, j['left_knee'], THIGH_RADIUS_M, trousers, KIND_PLAIN),
        (r_hip, j['right_knee'], THIGH_RADIUS_M, trousers, KIND_PLAIN),
        (j['left_knee'], j['left_foot'], SHIN_RADIUS_M, trousers, KIND_PLAIN),
        (j['right_knee'], j['right_foot'], SHIN_RADIUS_M, trousers, KIND_PLAIN),
        (lf[0], lf[1], FOOT_RADIUS_M, SHOE_RGB, KIND_PLAIN),
        (rf[0], rf[1], FOOT_RADIUS_M, SHOE_RGB, KIND_PLAIN),
        (j['left_shoulder'], j['left_elbow'], UPPER_ARM_RADIUS_M, shirt, KIND_PLAIN),
        (j['right_shoulder'], j['right_elbow'], UPPER_ARM_RADIUS_M, shirt, KIND_PLAIN),
        (j['left_elbow'], j['left_hand'], FOREARM_RADIUS_M, skin, KIND_PLAIN),
        (j['right_elbow'], j['right_hand'], FOREARM_RADIUS_M, skin, KIND_PLAIN),
        (j['left_hand'], j['left_hand'], hand_r['left'], skin, KIND_PLAIN),
        (j['right_hand'], j['right_hand'], hand_r['right'], skin, KIND_PLAIN),
    ]
    k = len(segments)
    hair = np.asarray(hair_rgb(body.person_id), dtype=np.float64)
    return Capsules(
        a=np.array([s[0] for s in segments]), b=np.array([s[1] for s in segments]),
        radius=np.array([s[2] for s in segments], dtype=np.float64),
        rgb=np.array([s[3] for s in segments], dtype=np.float64),
        rgb2=np.broadcast_to(hair, (k, 3)).copy(),
        kind=np.array([s[4] for s in segments], dtype=np.int64),
        forward=np.broadcast_to(forward, (k, 3)).copy())


def capsule_surface_rgb(capsules: Capsules, index: NDArray[np.int64], points: FloatArray,
                        normals: FloatArray) -> FloatArray:
    """Return the unshaded colour (N, 3) of capsules ``index`` at points with normals."""
    rgb = capsules.rgb[index].copy()
    head = capsules.kind[index] == KIND_HEAD
    if np.any(head):
        n = normals[head]
        facing = np.einsum('ij,ij->i', n, capsules.forward[index[head]])
        hair = (n[:, 2] > 0.15) | (facing < 0.2)
        rgb_head = rgb[head]
        rgb_head[hair] = capsules.rgb2[index[head]][hair]
        rgb[head] = rgb_head
    return rgb
