"""Pose core on hand-built depth scenes: stick figures and hands in bins, bad input."""

import dataclasses
import math

from locator_scenes import intrinsics, person, render_depth
import numpy as np
from pose_scenes import bin_point, cameras, reaching_person, render, shelf, SHELF_Y
import pytest

from go_store_nodes.core.locator import DepthFrame, FrameRejectedError, LocatorConfig
from go_store_nodes.core.pose import (
    JOINTS,
    nearest_shelf,
    PoseConfig,
    PoseEstimator,
    PoseInputError,
    ShelfFront,
    TrackState,
)
from go_store_nodes.core.transforms import Transform

T0 = 1_700_000_000 * 10**9
PERIOD = 66_666_667
EMPTY = 4


def estimator(config=None, cams=None):
    cams = cams or cameras()
    return PoseEstimator(config or PoseConfig(), LocatorConfig(), {c: 15.0 for c in cams},
                         (0.0, 0.0), (5.0, 5.0), [shelf()])


def run(scene, tracks, frames=4, config=None, weighed_from_ns=None, batch=None):
    """Learn the empty shelf, then show the scene; return every emitted skeleton set.

    ``weighed_from_ns``: the shelf's load cells send 1 s of settled weights from then;
    ``batch(stamp)``: the load-cell batch each tick sends before its frames.
    """
    cams = cameras()
    pose = estimator(config, cams)
    if weighed_from_ns is not None:
        pose.add_weights(weights(weighed_from_ns, 60))
    out = []
    for index in range(EMPTY + frames):
        stamp = T0 + index * PERIOD
        if batch is not None:
            pose.add_weights(batch(stamp))
        shapes = scene if index >= EMPTY else ()
        for offset, (camera_id, camera) in enumerate(cams.items()):
            out += pose.add_depth(DepthFrame(camera_id, stamp + offset * 1000,
                                             render(camera, shapes, seed=index), *camera))
        out += pose.add_tracks(tracks if index >= EMPTY else [], stamp + 500)
    return pose, out


def bins():
    return {b.bin_id: b for b in shelf().bins}


def target(bin_id, x, above_floor=0.12):
    point = bin_point(bins()[bin_id], above_floor=above_floor)
    point[0] = x
    return point


def joint(skeleton, name):
    return skeleton.joints[JOINTS.index(name)]


def test_one_arm_into_a_bin_names_that_hand_and_bin_and_keeps_its_entry_stamp():
    shapes, _ = reaching_person(2.2, SHELF_Y - 0.3, right_target=target('bin_11', 2.35))
    pose, out = run(shapes, [TrackState(7, 2.2, SHELF_Y - 0.3)], frames=5)
    with_people = [s for s in out if s.skeletons]
    assert len(with_people) >= 4
    last = with_people[-1].skeletons[0]
    assert last.track_id == 7 and last.shelf_id == 'shelf_a'
    assert last.hand_bin('right') == 'bin_11'
    assert last.hand_bin('left') == ''
    # Reported once seen in the bin in two frame sets in a row (confirm_frames); the entry
    # stamp is the first of them, kept while the hand stays.
    index = next(i for i, s in enumerate(with_people) if s.skeletons[0].hand_bin('right'))
    since = with_people[index].skeletons[0].hands['right'].since_ns
    assert since == with_people[index - 1].stamp_ns
    assert last.hands['right'].since_ns == since < with_people[-1].stamp_ns
    assert pose.hands_in_bins()[(7, 'right')] == ('bin_11', since)
    head = joint(last, 'head')
    assert head.confidence > 0.5
    assert math.hypot(head.position[0] - 2.2, head.position[1] - (SHELF_Y - 0.3)) < 0.1
    assert head.position[2] == pytest.approx(1.75 - 0.1, abs=0.05)
    hand = joint(last, 'right_hand')
    assert hand.confidence > 0.0 and hand.position[1] > SHELF_Y - 0.1
    assert joint(last, 'left_hand').confidence == 0.0
    left, right = joint(last, 'left_shoulder'), joint(last, 'right_shoulder')
    assert left.position[0] < 2.2 < right.position[0]     # facing +y: left is map -x
    assert 0.3 < right.position[0] - left.position[0] < 0.65


def test_both_arms_into_two_bins():
    shapes, _ = reaching_person(2.0, SHELF_Y - 0.3, left_target=target('bin_10', 1.8),
                                right_target=target('bin_11', 2.2))
    _, out = run(shapes, [TrackState(3, 2.0, SHELF_Y - 0.3)])
    last = out[-1].skeletons[0]
    assert (last.hand_bin('left'), last.hand_bin('right')) == ('bin_10', 'bin_11')
    assert joint(last, 'left_elbow').confidence > 0.0
    assert joint(last, 'right_elbow').confidence > 0.0


def test_arms_down_puts_no_hand_in_a_bin():
    shapes, _ = reaching_person(2.0, SHELF_Y - 0.35)
    _, out = run(shapes, [TrackState(3, 2.0, SHELF_Y - 0.35)])
    (last,) = out[-1].skeletons
    assert last.hands == {}
    assert joint(last, 'left_hand').confidence == 0.0
    assert joint(last, 'right_hand').confidence == 0.0
    assert joint(last, 'head').confidence > 0.5
    assert joint(last, 'left_shoulder').confidence > 0.0


def test_a_leaning_persons_hidden_hand_is_placed_at_the_front_of_the_bin_it_goes_into():
    front = ShelfFront.of(shelf())
    config = PoseConfig()
    rng = np.random.default_rng(3)

    def blob(centre, spread, count):
        return np.asarray(centre) + rng.normal(0.0, spread, (count, 3))

    head = (2.3, SHELF_Y - 0.15, 1.5)
    points = np.concatenate([
        blob((2.3, SHELF_Y - 0.15, 1.55), 0.04, 80),          # head
        blob((2.3, SHELF_Y - 0.2, 1.3), 0.08, 200),           # shoulders and back
        blob((2.05, SHELF_Y - 0.08, 0.8), 0.02, 15),          # left hand hanging in front
        blob((2.5, SHELF_Y - 0.03, 0.95), 0.02, 12),          # right forearm at the front
    ])
    hand = front.leaning_hand(points, head, config)
    assert hand is not None
    assert hand[0] == pytest.approx(2.5, abs=0.05)
    assert SHELF_Y <= hand[1] <= SHELF_Y + 0.05
    assert hand[2] == pytest.approx(0.93, abs=0.05)
    assert front.bin_of(hand, config, config.bin_front_tolerance_m).bin_id == 'bin_11'
    assert front.bin_of(hand, config, 0.0) is None        # not seen inside: front edge only
    # Standing back (head 0.35 m from the front), or only the head seen: no hand.
    assert front.leaning_hand(points, (2.3, SHELF_Y - 0.35, 1.5), config) is None
    assert front.leaning_hand(points[:80], head, config) is None


def test_two_people_side_by_side_each_get_their_own_bin():
    left_person, _ = reaching_person(1.45, SHELF_Y - 0.3, right_target=target('bin_10', 1.6))
    right_person, _ = reaching_person(2.55, SHELF_Y - 0.3, left_target=target('bin_11', 2.4))
    tracks = [TrackState(11, 1.45, SHELF_Y - 0.3), TrackState(12, 2.55, SHELF_Y - 0.3)]
    _, out = run(left_person + right_person, tracks, frames=6)
    hands = {}
    for result in out[-3:]:
        assert {s.track_id for s in result.skeletons} == {11, 12}
        for skeleton in result.skeletons:
            hands.setdefault(skeleton.track_id, set()).update(
                (side, h.bin_id) for side, h in skeleton.hands.items())
    assert hands == {11: {('right', 'bin_10')}, 12: {('left', 'bin_11')}}


def test_a_person_far_from_the_shelf_gets_no_figure():
    _, out = run(person(2.0, SHELF_Y - 2.2), [TrackState(5, 2.0, SHELF_Y - 2.2)])
    assert out and all(not s.skeletons for s in out)


def test_nan_and_zero_depth_frames_are_rejected_and_the_rest_goes_on():
    cams = cameras()
    pose = estimator(cams=cams)
    camera_id, camera = next(iter(cams.items()))
    for depth in (np.zeros((camera[0].height, camera[0].width), np.float32),
                  np.full((camera[0].height, camera[0].width), np.nan, np.float32)):
        with pytest.raises(FrameRejectedError) as error:
            pose.add_depth(DepthFrame(camera_id, T0, np.nan_to_num(depth), *camera))
        assert error.value.reason == 'no_depth'
    pose.add_depth(DepthFrame(camera_id, T0 + PERIOD, render(camera, ()), *camera))
    with pytest.raises(FrameRejectedError) as error:
        pose.add_depth(DepthFrame(camera_id, T0 + PERIOD, render(camera, ()), *camera))
    assert error.value.reason == 'out_of_order'
    with pytest.raises(FrameRejectedError) as error:
        pose.add_depth(DepthFrame('cam_z', T0, render(camera, ()), *camera))
    assert error.value.reason == 'unknown_camera'


def test_a_missing_camera_delays_sets_but_the_other_camera_still_makes_figures():
    cams = cameras()
    pose = estimator(cams=cams)
    camera_id, camera = 'cam_b', cams['cam_b']       # cam_a never delivers
    shapes, _ = reaching_person(2.2, SHELF_Y - 0.3, right_target=target('bin_11', 2.35))
    out = []
    for index in range(EMPTY + 4):
        stamp = T0 + index * PERIOD
        out += pose.add_depth(DepthFrame(camera_id, stamp, render(
            camera, shapes if index >= EMPTY else (), seed=index), *camera))
        out += pose.add_tracks([TrackState(1, 2.2, SHELF_Y - 0.3)] if index >= EMPTY else [],
                               stamp + 500)
    out += pose.flush(T0 + 20 * PERIOD)
    assert all(s.camera_ids == (camera_id,) for s in out)
    assert out[-1].skeletons and out[-1].skeletons[0].hand_bin('right') == 'bin_11'


def test_tracks_out_of_order_from_the_future_or_not_finite_are_rejected():
    pose = estimator()
    pose.add_tracks([TrackState(1, 1.0, 1.0)], T0)
    for stamp, received, tracks, reason in (
            (T0, None, [], 'out_of_order'),
            (T0 - 5, None, [], 'out_of_order'),
            (T0 + 10**10, T0, [], 'future_stamp'),
            (T0 + 10, None, [TrackState(1, math.nan, 1.0)], 'non_finite')):
        with pytest.raises(PoseInputError) as error:
            pose.add_tracks(tracks, stamp, received)
        assert error.value.reason == reason


def test_frame_sets_wait_for_their_tracks_then_go_without():
    cams = cameras()
    pose = estimator(cams=cams)
    stamp = T0
    for offset, (camera_id, camera) in enumerate(cams.items()):
        assert pose.add_depth(DepthFrame(camera_id, stamp + offset, render(camera, ()),
                                         *camera)) == []
    # Complete set, no tracks yet: it waits (track_wait_s) ...
    assert pose.flush(stamp + 10**8) == []
    # ... and goes without once the wait is over.
    (result,) = pose.flush(stamp + 10**9)
    assert result.skeletons == () and result.tracks_stamp_ns is None


def test_config_is_validated():
    with pytest.raises(ValueError, match='near_shelf_m'):
        PoseConfig(near_shelf_m=-1.0)
    with pytest.raises(ValueError, match='min_arm_points'):
        PoseConfig(min_arm_points=2.5)
    with pytest.raises(ValueError, match='head_search_m'):
        PoseConfig(head_search_m=0.9, body_radius_m=0.5)
    with pytest.raises(ValueError, match='at least one camera'):
        PoseEstimator(PoseConfig(), LocatorConfig(), {}, (0, 0), (1, 1), [])


def test_depth_scene_helpers_render_the_shelf():
    k = intrinsics()
    assert render_depth(k, cameras()['cam_a'][1], ()).max() > 0


def weights(first_ns, count, unsettled_from_ns=None, bin_id='bin_01', extra=()):
    """Return a load-cell batch of shelf_a: every bin at 1000 g.

    ``bin_id`` is 300 g lighter (a unit lifted) from ``unsettled_from_ns``; ``extra``: more
    (bin id, grams) columns.
    """
    from go_store_nodes.core.fusion.fusion import LoadCellSamples
    period = 16_666_667
    ids = [b.bin_id for b in shelf().bins] + [b for b, _ in extra]
    grams = np.full((count, len(ids)), 1000.0)
    stamps = first_ns + period * np.arange(count)
    if unsettled_from_ns is not None:
        grams[stamps >= unsettled_from_ns, ids.index(bin_id)] -= 300.0
    for k, (_, value) in enumerate(extra):
        grams[:, len(shelf().bins) + k] = value
    return LoadCellSamples('shelf_a', tuple(ids), first_ns, period, grams)


SCENE_NS = T0 + EMPTY * PERIOD     # the first tick that shows the scene
SETTLED_NS = T0 - 1_000_000_000    # the load cells settle before it


def run_weighed(scene, tracks, unsettled, frames=5, extra=()):
    """``run`` with the shelf's load cells; bin_01 unsettled from the scene on if asked."""
    return run(scene, tracks, frames, weighed_from_ns=SETTLED_NS,
               batch=lambda stamp: weights(stamp, 4, SCENE_NS if unsettled else None,
                                           extra=extra))


def test_a_hand_seen_a_level_off_goes_to_the_bin_whose_load_cell_it_unsettles():
    # The arm goes into bin_11 low, just above its board; the cell of bin_01 below (same
    # column) is the one that feels the hand. A NaN column and a bin the store does not
    # know are ignored.
    shapes, _ = reaching_person(2.2, SHELF_Y - 0.3, right_target=target('bin_11', 2.35))
    pose, out = run_weighed(shapes, [TrackState(7, 2.2, SHELF_Y - 0.3)], unsettled=True,
                            extra=(('bin_unknown', 5.0), ('bin_lost', float('nan'))))
    last = [s for s in out if s.skeletons][-1].skeletons[0]
    assert last.hand_bin('right') == 'bin_01'
    # The hand joint goes with it, to the height of bin_01 (0.4-0.9 m), e.g. for crops.
    hand = joint(last, 'right_hand')
    assert 0.4 < hand.position[2] < 0.9 and hand.position[1] > SHELF_Y - 0.15
    assert hand.position[0] == pytest.approx(2.35, abs=0.15)


def test_a_hand_that_moves_no_load_cell_of_its_column_is_in_no_bin():
    shapes, _ = reaching_person(2.2, SHELF_Y - 0.3, right_target=target('bin_11', 2.35))
    _, out = run_weighed(shapes, [TrackState(7, 2.2, SHELF_Y - 0.3)], unsettled=False)
    last = [s for s in out if s.skeletons][-1].skeletons[0]
    assert last.hands == {}
    assert joint(last, 'right_hand').confidence > 0.0     # the arm is still seen


def test_an_unsettled_cell_of_another_column_does_not_take_the_hand_seen():
    # The right arm is seen going into bin_11 (x 2-3); bin_00 (x 1-2) is the cell that
    # moves. The arm seen stays in no bin; the person, the only one there, has the other
    # hand in bin_00 (placed at its front, on the left: the side towards it).
    shapes, _ = reaching_person(2.2, SHELF_Y - 0.3, right_target=target('bin_11', 2.35))
    _, out = run(shapes, [TrackState(7, 2.2, SHELF_Y - 0.3)], frames=5,
                 weighed_from_ns=SETTLED_NS,
                 batch=lambda stamp: weights(stamp, 4, SCENE_NS, bin_id='bin_00'))
    last = [s for s in out if s.skeletons][-1].skeletons[0]
    assert last.hand_bin('right') == ''
    assert last.hand_bin('left') == 'bin_00'


def two_cells(stamp, bins_moved):
    """Return a load-cell batch of shelf_a, ``bins_moved`` 300 g lighter from the scene on."""
    batch = weights(stamp, 4)
    ids = list(batch.bin_ids)
    stamps = stamp + batch.sample_period_ns * np.arange(4)
    for bin_id in bins_moved:
        batch.grams[stamps >= SCENE_NS, ids.index(bin_id)] -= 300.0
    return batch


def test_a_cell_that_moves_with_no_hand_seen_holds_the_hand_of_the_one_person_at_it():
    # Arms down (the hand under the board is not seen); bin_00's cell moves: the hand of
    # the one person in front of it is placed there, at the bin's front, inferred.
    track = TrackState(4, 1.5, SHELF_Y - 0.25)
    _, out = run(person(1.5, SHELF_Y - 0.25), [track], frames=5,
                 weighed_from_ns=SETTLED_NS,
                 batch=lambda stamp: weights(stamp, 4, SCENE_NS, bin_id='bin_00'))
    last = [s for s in out if s.skeletons][-1].skeletons[0]
    # One hand (the side towards the bin's middle: either, the head is in front of it).
    assert [h.bin_id for h in last.hands.values()] == ['bin_00']
    hand = joint(last, f'{next(iter(last.hands))}_hand')
    assert hand.confidence == pytest.approx(PoseConfig().inferred_confidence)
    assert hand.position[1] == pytest.approx(SHELF_Y + 0.02, abs=0.01)
    assert 1.0 <= hand.position[0] <= 2.0 and 0.4 <= hand.position[2] <= 0.9
    # Without the load cells, or with them settled, nobody's hand is in a bin.
    _, out = run(person(1.5, SHELF_Y - 0.25), [track], frames=5)
    assert all(not s.hands for r in out for s in r.skeletons)
    _, out = run_weighed(person(1.5, SHELF_Y - 0.25), [track], unsettled=False)
    assert all(not s.hands for r in out for s in r.skeletons)


def test_a_cell_that_moves_between_two_people_as_near_places_no_hand():
    scene = person(1.25, SHELF_Y - 0.25) + person(1.8, SHELF_Y - 0.25)
    tracks = [TrackState(1, 1.25, SHELF_Y - 0.25), TrackState(2, 1.8, SHELF_Y - 0.25)]
    _, out = run(scene, tracks, frames=5, weighed_from_ns=SETTLED_NS,
                 batch=lambda stamp: weights(stamp, 4, SCENE_NS, bin_id='bin_00'))
    assert any(r.skeletons for r in out)
    assert all(not s.hands for r in out for s in r.skeletons)
    # One of them a step back (0.6 m from the front): the one at the front reached.
    scene = person(1.25, SHELF_Y - 0.25) + person(1.8, SHELF_Y - 0.6)
    tracks = [TrackState(1, 1.25, SHELF_Y - 0.25), TrackState(2, 1.8, SHELF_Y - 0.6)]
    _, out = run(scene, tracks, frames=5, weighed_from_ns=SETTLED_NS,
                 batch=lambda stamp: weights(stamp, 4, SCENE_NS, bin_id='bin_00'))
    last = [r for r in out if r.skeletons][-1]
    assert {s.track_id: dict(s.hands) and s.hand_bin('right') for s in last.skeletons} == \
        {1: 'bin_00', 2: {}}


def test_a_person_seen_reaching_into_one_moving_bin_leaves_another_to_their_neighbour():
    # Person 7's arm is seen in bin_11 (its cell moves: explained); bin_00's cell moves too.
    # Person 8 stands as near bin_00 as person 7 does; 7 is busy, so the hand is 8's.
    reacher, _ = reaching_person(2.2, SHELF_Y - 0.3, right_target=target('bin_11', 2.35))
    scene = reacher + person(1.8, SHELF_Y - 0.3)
    tracks = [TrackState(7, 2.2, SHELF_Y - 0.3), TrackState(8, 1.8, SHELF_Y - 0.3)]
    _, out = run(scene, tracks, frames=6, weighed_from_ns=SETTLED_NS,
                 batch=lambda stamp: two_cells(stamp, ('bin_11', 'bin_00')))
    last = {s.track_id: s for s in [r for r in out if r.skeletons][-1].skeletons}
    assert last[7].hand_bin('right') == 'bin_11' and last[7].hand_bin('left') == ''
    assert 'bin_00' in (last[8].hand_bin('left'), last[8].hand_bin('right'))


def test_a_shelf_whose_load_cells_went_silent_is_judged_by_sight_alone():
    shapes, _ = reaching_person(2.2, SHELF_Y - 0.3, right_target=target('bin_11', 2.35))
    # The last sample is more than weight_stale_s before the scene.
    _, out = run(shapes, [TrackState(7, 2.2, SHELF_Y - 0.3)], frames=5,
                 weighed_from_ns=T0 - 4_000_000_000)
    last = [s for s in out if s.skeletons][-1].skeletons[0]
    assert last.hand_bin('right') == 'bin_11'


def test_of_two_shelves_in_a_row_a_person_belongs_to_the_one_they_stand_in_front_of():
    first = shelf()
    # A second shelf of the same row, its left end 0.5 m past the first's right end.
    moved = Transform(first.t_map_shelf.rotation, first.t_map_shelf.translation
                      + np.array([2.5, 0.0, 0.0]))
    second = dataclasses.replace(first, shelf_id='shelf_b', t_map_shelf=moved)
    fronts = [ShelfFront.of(first), ShelfFront.of(second)]
    # 0.2 m in front of the second shelf's left end: 0.7 m past the first one's end.
    assert nearest_shelf(4.7, SHELF_Y - 0.2, fronts, 1.2).shelf_id == 'shelf_b'
    # In the gap, nearer the first shelf's end.
    assert nearest_shelf(3.1, SHELF_Y - 0.2, fronts, 1.2).shelf_id == 'shelf_a'
    assert fronts[0].front_distance(3.3, SHELF_Y - 0.4, 0.6) == pytest.approx(0.5)
    assert fronts[0].front_distance(2.0, SHELF_Y - 0.4, 0.6) == pytest.approx(0.4)
    assert fronts[0].front_distance(2.0, SHELF_Y + 0.1, 0.6) is None
