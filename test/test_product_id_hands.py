"""Product ID round the hand: hand points from skeletons, crops round them at shelf events.

Frames are hand-built: a flat grey store seen by the reference store's cameras, and a
catalog reference image of the item pasted where the hand that left the bin projects.
"""

import math

import cv2
import numpy as np
import pytest

from go_store_nodes.core.coverage import blocked_by_shelves
from go_store_nodes.core.locator import FrameRejectedError
from go_store_nodes.core.product_id import (
    HandRecord,
    ProductIdConfig,
    ProductIdentifier,
    ShelfEventData,
    skeleton_data,
    SkeletonData,
    SkeletonRejectedError,
)
from go_store_nodes.core.transforms import Transform

S = 1_000_000_000
T0 = 1_700_000_000 * S
BIN, SKU = 'shelf_01_bin_1', 'aqua_still_500ml'
TRACK = 7
AFTER_S = (1.8, 2.0, 2.2, 2.4)          # frames and hand points after the pick (s)


def _points(store):
    """Return a point inside the bin, one 35 cm in front of it (the hand), the torso.

    The torso is 45 cm behind the hand and 20 cm higher; all in map.
    """
    bin_ = store.bins()[BIN]
    shelf = store.shelf(bin_.shelf_id)
    low, high = np.asarray(bin_.min_m, float), np.asarray(bin_.max_m, float)
    x, z = (low[0] + high[0]) / 2, (low[2] + high[2]) / 2
    local = np.array([[x, (low[1] + high[1]) / 2, z], [x, low[1] - 0.35, z],
                      [x, low[1] - 0.8, z + 0.2]])
    inside, hand, body = shelf.t_map_shelf.apply(local)
    return tuple(inside), tuple(hand), tuple(body)


def _pixel(camera, point):
    local = camera.t_map_color.inverse().apply(np.asarray(point, float)[None])[0]
    k = camera.model.color
    return (k.fx * local[0] / local[2] + k.cx, k.fy * local[1] / local[2] + k.cy,
            local[2])


def _seeing(store, point, margin_px=30, min_radius_px=6.0):
    """Cameras that see a point unobstructed, well inside the image, and near enough.

    Near enough: the ball of ``hand_radius_m`` (8 cm) round the hand spans at least
    ``min_radius_px``; farther views (cam_09 over the entrance sees this bin from 5 m, a
    5 px disc) are too coarse to tell a pasted item from its neighbours in this test.
    """
    found = []
    for camera in store.cameras:
        u, v, z = _pixel(camera, point)
        k = camera.model.color
        if z > 0.2 and k.fx * ProductIdConfig().hand_radius_m / z >= min_radius_px and \
                margin_px <= u < k.width - margin_px and \
                margin_px <= v < k.height - margin_px and not blocked_by_shelves(
                    camera.t_map_color.translation, np.asarray(point)[None],
                    store.shelves)[0]:
            found.append(camera)
    return found


def _grey(camera, seed):
    k = camera.model.color
    noise = np.random.default_rng(seed).normal(0.0, 2.0, (k.height, k.width, 3))
    return np.clip(128.0 + noise, 0, 255).astype(np.uint8)


def _with_item(image, camera, point, reference, radius_m=0.06):
    """Paste the reference's item pixels, scaled to an item of ``radius_m``, at point."""
    u, v, z = _pixel(camera, point)
    size = max(6, int(round(2 * camera.model.color.fx * radius_m / z)))
    scale = size / max(reference.rgb.shape[:2])
    rgb = cv2.resize(reference.rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(reference.mask.astype(np.uint8), None, fx=scale, fy=scale,
                      interpolation=cv2.INTER_NEAREST) > 0
    row0, col0 = int(round(v)) - rgb.shape[0] // 2, int(round(u)) - rgb.shape[1] // 2
    out = image.copy()
    region = out[row0:row0 + rgb.shape[0], col0:col0 + rgb.shape[1]]
    region[mask] = rgb[mask]
    return out


def _skeleton(inside_or_hand, bin_id, body):
    return SkeletonData(TRACK, None, inside_or_hand, '', bin_id, body)


def _feed_pick(store, identifier, references, cameras, skeletons_in_bin=True):
    """Feed frames and skeletons of a pick whose item leaves in the right hand.

    Frames of every camera before and after it, skeleton frames at 10 Hz through it.
    Returns the shelf event.
    """
    inside, hand, body = _points(store)
    reference = next(r for r in references if r.sku == SKU)
    for index, camera in enumerate(cameras):
        k = camera.model.color
        identifier.add_frame(camera.camera_id, T0, _grey(camera, index), k,
                             camera.t_map_color)
        for after_s in AFTER_S:
            image = _with_item(_grey(camera, index + 100), camera, hand, reference)
            identifier.add_frame(camera.camera_id, T0 + int(after_s * S), image, k,
                                 camera.t_map_color)
    for step in range(26):
        t = step * 0.1
        reaching = 1.0 <= t <= 1.6
        point, bin_id = (inside, BIN) if reaching and skeletons_in_bin else (hand, '')
        identifier.add_skeletons(T0 + int(t * S), [_skeleton(point, bin_id, body)],
                                 Transform.identity(), T0 + int(t * S))
    return ShelfEventData('ev1', BIN, 'pick', T0 + 1 * S, T0 + int(1.6 * S))


@pytest.mark.parametrize('hand_pixels', [1, 2])
def test_an_item_drawn_at_the_hand_after_a_pick_is_found(store, classifier, references,
                                                         hand_pixels):
    _, hand, _ = _points(store)
    cameras = _seeing(store, hand)
    assert len(cameras) >= 2
    identifier = ProductIdentifier(store, classifier, ProductIdConfig(
        frame_candidates=1, hand_pixels=hand_pixels))
    event = _feed_pick(store, identifier, references, cameras)
    identifier.add_event(event)
    observations = identifier.poll(T0 + 10 * S)
    hands = [o for o in observations if o.hand in ('left', 'right')]
    assert {o.camera_id for o in hands} == {c.camera_id for c in cameras}
    for observation in hands:
        assert observation.observation_id == f'ev1/{observation.camera_id}/hand'
        assert (observation.track_id, observation.hand, observation.bin_id) == \
            (TRACK, 'right', BIN)
        assert T0 + int(1.7 * S) <= observation.stamp_ns <= T0 + int(2.5 * S)
        assert observation.classification.best_sku == SKU, observation.classification
    assert identifier.counters['hand_observations'] == len(cameras)


def test_a_return_looks_at_the_hand_before_the_start(store, classifier, references):
    _, hand, _ = _points(store)
    cameras = _seeing(store, hand)[:1]
    identifier = ProductIdentifier(store, classifier, ProductIdConfig(frame_candidates=1))
    _feed_pick(store, identifier, references, cameras)
    # Same frames, read as a return at 2.5-3 s: the hand held the item before the start.
    inside, _, body = _points(store)
    for t in (2.6, 2.7, 2.8):
        identifier.add_skeletons(T0 + int(t * S), [_skeleton(inside, BIN, body)],
                                 Transform.identity(), None)
    identifier.add_event(ShelfEventData('ev2', BIN, 'return', T0 + int(2.6 * S),
                                        T0 + int(2.8 * S)))
    hands = [o for o in identifier.poll(T0 + 10 * S) if o.hand in ('left', 'right')]
    assert [o.observation_id for o in hands] == [f'ev2/{cameras[0].camera_id}/hand']
    assert hands[0].classification.best_sku == SKU
    assert hands[0].stamp_ns <= T0 + int(2.6 * S)


def test_a_hand_never_in_the_bin_gives_nothing(store, classifier, references):
    _, hand, _ = _points(store)
    cameras = _seeing(store, hand)
    identifier = ProductIdentifier(store, classifier, ProductIdConfig(frame_candidates=1))
    event = _feed_pick(store, identifier, references, cameras, skeletons_in_bin=False)
    identifier.add_event(event)
    assert not [o for o in identifier.poll(T0 + 10 * S) if o.hand in ('left', 'right')]
    assert identifier.counters['events_without_hand'] == 1


def test_a_camera_missing_from_tf_gives_no_hand_crop(store, classifier, references):
    _, hand, _ = _points(store)
    cameras = _seeing(store, hand)
    lost, kept = cameras[0], cameras[1:]
    identifier = ProductIdentifier(store, classifier, ProductIdConfig(frame_candidates=1))
    with pytest.raises(FrameRejectedError):
        identifier.add_frame(lost.camera_id, T0, _grey(lost, 0), lost.model.color, None)
    assert identifier.counters['dropped_frame_no_transform'] == 1
    event = _feed_pick(store, identifier, references, kept)
    identifier.add_event(event)
    hands = [o for o in identifier.poll(T0 + 10 * S) if o.hand in ('left', 'right')]
    assert {o.camera_id for o in hands} == {c.camera_id for c in kept}


def test_bad_skeletons_are_dropped_and_counted_the_rest_kept(store):
    record = HandRecord(100, store.bins(), future_tolerance_ns=S)
    good = SkeletonData(1, (0.0, 0.0, 1.0), (0.1, 0.0, 1.0), BIN, '')
    nan = SkeletonData(2, (math.nan, 0.0, 1.0), None, '', '')
    unknown = SkeletonData(3, None, (0.0, 0.0, 1.0), '', 'no_such_bin')
    with pytest.raises(SkeletonRejectedError) as rejected:
        record.add(T0, [nan, good, unknown], Transform.identity(), T0)
    assert rejected.value.reason == 'nan_joint'
    assert record.counters['dropped_skeletons_nan_joint'] == 1
    assert record.counters['dropped_skeletons_unknown_bin'] == 1
    assert record.counters['skeletons'] == 1 and len(record) == 2
    with pytest.raises(SkeletonRejectedError) as rejected:
        record.add(T0 + 5 * S, [good], Transform.identity(), T0)
    assert rejected.value.reason == 'future_stamp'
    with pytest.raises(SkeletonRejectedError) as rejected:
        record.add(T0, [good, good], None, T0)
    assert rejected.value.reason == 'no_transform'
    assert record.counters['dropped_skeletons_no_transform'] == 2
    assert record.reaching(BIN, T0, T0) == [(1, 'left')]
    assert record.reaching(BIN, T0 + 1, T0 + S) == []


def test_hand_record_is_bounded_time_ordered_and_placed_in_map(store):
    record = HandRecord(7, store.bins(), future_tolerance_ns=S)   # two hands a skeleton
    shift = Transform(np.eye(3), np.array([1.0, 2.0, 0.0]))
    for t in (3, 1, 2):
        record.add(T0 + t * S, [SkeletonData(1, None, (0.0, 0.0, 1.0), '', BIN)],
                   Transform.identity(), None)
    assert [p.stamp_ns for p in record.path(1, 'right', T0, T0 + 5 * S)] == \
        [T0 + S, T0 + 2 * S, T0 + 3 * S]
    record.add(T0 + 4 * S, [SkeletonData(1, (0.0, 0.0, 1.0), (0.0, 0.0, 1.0), '', '')],
               Transform.identity(), None)
    assert len(record) == 7 and record.counters['hand_points_evicted'] == 1
    record.add(T0 + 5 * S, [SkeletonData(2, None, (0.5, 0.0, 1.0), '', '')], shift, None)
    assert record.path(2, 'right', T0, T0 + 6 * S)[0].point_m == (1.5, 2.0, 1.0)


def test_skeleton_data_reads_seen_joints_only():
    seen = skeleton_data(4, {6: (1.0, 2.0, 1.0, 0.9), 7: (0.0, 0.0, 0.0, 0.0),
                             1: (0.0, 0.0, 1.5, 0.8), 8: (0.1, 0.1, 1.0, 0.0)}, BIN, '')
    assert (seen.left_hand, seen.right_hand, seen.body) == ((1.0, 2.0, 1.0), None,
                                                           (0.0, 0.0, 1.5))
    assert (seen.left_bin_id, seen.right_bin_id, seen.track_id) == (BIN, '', 4)


def test_an_event_waits_for_hands_and_frames_through_the_follow_window(
        store, classifier, references):
    _, hand, body = _points(store)
    cameras = _seeing(store, hand)
    identifier = ProductIdentifier(store, classifier, ProductIdConfig(frame_candidates=1,
                                                                      carried_follow_s=0.0))
    event = _feed_pick(store, identifier, references, cameras)    # hands and frames to 2.5 s
    identifier.add_event(event)
    assert identifier.poll(T0 + int(2.55 * S)) == []             # follow window ends at 2.6 s
    identifier.add_skeletons(T0 + int(2.7 * S), [_skeleton(hand, '', body)],
                             Transform.identity(), None)
    assert identifier.poll(T0 + int(2.7 * S)) == []             # the frames are not there yet
    for index, camera in enumerate(cameras):
        identifier.add_frame(camera.camera_id, T0 + int(2.7 * S), _grey(camera, index),
                             camera.model.color, camera.t_map_color)
    assert [o for o in identifier.poll(T0 + int(2.7 * S)) if o.hand in ('left', 'right')]
    assert identifier.pending_events == 0
