"""Person locator on frames of the simulator's renderer: people found where their heads are.

The store here is built in the test (two cameras, one tilted, 3.6-3.8 m high, a shelf),
so it does not follow the reference store's camera layout. The simulator only makes the
input; the locator never sees a body.
"""

import math

from locator_scenes import camera_pose
import numpy as np
import pytest

from go_store_nodes.core.locator import (
    ColorFrame,
    DepthFrame,
    LocatorConfig,
    PersonLocator,
)
from go_store_nodes.core.locator.camera import in_view
from go_store_nodes.core.sim.people import BodyState, Physique, pose_joints, PoseInput
from go_store_nodes.core.sim.render import Renderer
from go_store_nodes.core.store import parse_store_description

T0 = 1_700_000_000 * 10**9
PERIOD = 66_666_667
SKIN = (224, 172, 105)
TOLERANCE_M = 0.15


def _camera(camera_id, pose):
    return {'id': camera_id, 'model': 'd435', 'serial': '',
            'pose': {'translation_m': [float(v) for v in pose.translation],
                     'rotation': {'matrix': np.asarray(pose.rotation).tolist()}}}


def _intrinsics(fx):
    return {'width': 424, 'height': 240, 'fx': fx, 'fy': fx, 'cx': 211.5, 'cy': 119.5,
            'distortion_model': 'plumb_bob', 'd': [0.0] * 5}


def _store():
    product = {'sku': 'tea', 'name': 'Tea', 'brand': 'T', 'flavour': 'black',
               'category': 'tea', 'unit_weight_g': 100.0, 'weight_tolerance_g': 2.0,
               'price_cents': 199,
               'appearance': {'shape': 'box', 'size_m': [0.1, 0.06, 0.15],
                              'color_rgb': [200, 40, 40], 'accent_rgb': [250, 250, 250],
                              'pattern': 'band'}}
    data = {
        'store': {'name': 'locator_test', 'map_frame': 'map', 'size_m': [6.0, 5.0],
                  'currency': 'EUR'},
        'camera_models': {'d435': {
            'description': 'D435', 'fps': 15.0, 'depth_range_m': [0.3, 10.0],
            'depth': _intrinsics(223.4), 'color': _intrinsics(308.5),
            'depth_to_color': {'translation_m': [0.015, 0.0, 0.0],
                               'rotation': {'quaternion_xyzw': [0.0, 0.0, 0.0, 1.0]}}}},
        'cameras': [_camera('overhead', camera_pose(2.5, 2.6, 3.6)),
                    _camera('angled', camera_pose(4.2, 0.4, 3.8, tilt_deg=28.0))],
        'shelves': [{'id': 'shelf', 'pose': {'translation_m': [2.5, 4.4, 0.0],
                                             'rotation': {'rpy_deg': [0.0, 0.0, 0.0]}},
                     'size_m': [2.0, 0.5, 1.9],
                     'bins': [{'id': 'bin', 'load_cell': 'lc', 'min_m': [-1.0, 0.02, 0.9],
                               'max_m': [1.0, 0.48, 1.3], 'skus': ['tea']}]}],
        'gates': [{'id': 'in', 'kind': 'entry', 'min_m': [0.0, 0.0], 'max_m': [1.0, 0.8]},
                  {'id': 'out', 'kind': 'exit', 'min_m': [5.0, 0.0], 'max_m': [6.0, 0.8]}],
        'catalog': [product],
    }
    return parse_store_description(data, 'test store')


def body(person_id, x, y, height=1.72, heading=0.0, shirt=(40, 150, 60), crouch=0.0,
         lean=0.0, right_target=None, speed=0.0, phase=0.0):
    physique = Physique(height_m=height, shoulder_width_m=min(0.5, max(0.4, 0.26 * height)),
                        arm_reach_m=0.7, shirt_rgb=shirt, trousers_rgb=(40, 40, 60),
                        skin_rgb=SKIN)
    pose = PoseInput(x, y, heading, gait_phase_rad=phase, speed_mps=speed, crouch_m=crouch,
                     lean_m=lean, right_target=right_target,
                     right_amount=0.0 if right_target is None else 1.0)
    return BodyState(person_id, pose_joints(physique, pose), shirt, (40, 40, 60), SKIN, (),
                     heading)


@pytest.fixture(scope='module')
def scene():
    store = _store()
    return store, Renderer(store, image_scale=1.0, seed=5, depth_noise_subpixel=0.08)


def feed(store, renderer, loc, k, bodies, with_colour=True):
    stamp = T0 + k * PERIOD
    sets = []
    for camera in store.cameras:
        depth, colour = renderer.render(camera.camera_id, bodies, stamp)
        depth_k, colour_k = renderer.intrinsics(camera.camera_id)
        if with_colour:
            loc.add_color(ColorFrame(camera.camera_id, stamp, colour, colour_k,
                                     camera.t_map_color))
        sets += loc.add_depth(DepthFrame(camera.camera_id, stamp,
                                         depth.astype(np.float32) * np.float32(0.001),
                                         depth_k, camera.t_map_depth, stamp))
    return sets


def new_locator(store):
    return PersonLocator(LocatorConfig(), {c.camera_id: c.model.fps for c in store.cameras},
                         (0.0, 0.0), store.size_m)


def under_cameras(store, head):
    """Whether a camera sees the head and the space just above and around it."""
    points = np.array([head + [dx, dy, 0.2] for dx, dy in
                       ((0, 0), (0.15, 0), (-0.15, 0), (0, 0.15), (0, -0.15))])
    return any(np.all(in_view(points, c.model.depth, c.t_map_depth)) for c in store.cameras)


def match(detections, bodies):
    """Distance from each body's head to the nearest detection."""
    return [min((math.hypot(d.x_m - b.joints['head'][0], d.y_m - b.joints['head'][1])
                 for d in detections), default=math.inf) for b in bodies]


def test_empty_store_gives_no_one(scene):
    store, renderer = scene
    loc = new_locator(store)
    sets = []
    for k in range(20):
        sets += feed(store, renderer, loc, k, [], with_colour=False)
    assert len(sets) == 20
    assert all(s.camera_ids == ('angled', 'overhead') for s in sets)
    assert sum(len(s.detections) for s in sets) == 0


def test_everyone_under_the_cameras_is_found_at_the_head(scene):
    store, renderer = scene
    bin_front = np.array([2.3, 4.45, 1.1])
    bodies = [
        body(1, 1.6, 2.0, 1.80, heading=0.3, shirt=(200, 40, 40)),
        body(2, 3.0, 1.9, 1.58, heading=2.0, speed=1.2, phase=1.0, shirt=(40, 40, 200)),
        # Two people touching, shoulder to shoulder.
        body(3, 3.3, 3.0, 1.75, heading=math.pi / 2, shirt=(230, 200, 40)),
        body(4, 3.75, 3.0, 1.66, heading=math.pi / 2, shirt=(40, 180, 180)),
        # Reaching into the shelf's bin, bent forward.
        body(5, 2.3, 3.85, 1.70, heading=math.pi / 2, crouch=0.35, lean=0.25,
             right_target=bin_front, shirt=(150, 60, 150)),
    ]
    loc = new_locator(store)
    for k in range(5):
        feed(store, renderer, loc, k, [])
    found = []
    for k in range(5, 10):
        found += feed(store, renderer, loc, k, bodies)
    assert len(found) == 5
    visible = [b for b in bodies if under_cameras(store, np.asarray(b.joints['head']))]
    assert len(visible) >= 4
    for located in found:
        distances = match(located.detections, visible)
        assert max(distances) < TOLERANCE_M, distances
        # No false people: one detection per person, each on someone (a head partly out of
        # view, like the reacher's here, is located on the part that is in view).
        assert len(located.detections) == len(bodies)
        for d in located.detections:
            nearest = min(math.hypot(d.x_m - j[0], d.y_m - j[1])
                          for b in bodies for j in (b.joints['head'], b.joints['pelvis']))
            assert nearest < 0.3
    final = {round(d.x_m, 1): d for d in found[-1].detections}
    heights = sorted(d.height_m for d in final.values())
    assert heights[-1] == pytest.approx(1.80, abs=0.08)   # the tallest, standing


def test_appearance_tells_shirts_apart_and_stays_for_the_same_person(scene):
    store, renderer = scene
    loc = new_locator(store)
    for k in range(5):
        feed(store, renderer, loc, k, [])
    signatures = []
    for k in range(5, 8):
        bodies = [body(1, 2.0 + 0.05 * k, 2.2, shirt=(210, 40, 40)),
                  body(2, 3.4, 2.8 - 0.05 * k, shirt=(40, 60, 210))]
        (located,) = feed(store, renderer, loc, k, bodies)
        by_x = sorted(located.detections, key=lambda d: d.x_m)
        assert len(by_x) == 2
        signatures.append([np.asarray(d.appearance) for d in by_x])
    for first, later in zip(signatures[0], signatures[-1], strict=True):
        assert np.linalg.norm(first) == pytest.approx(1.0)
        assert float(first @ later) > 0.9
    red, blue = signatures[0]
    assert float(red @ blue) < 0.8
