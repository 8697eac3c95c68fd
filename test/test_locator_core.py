"""Person locator core on hand-built depth scenes: a floor, people, baskets, bad frames."""

import dataclasses
import math

from locator_scenes import (
    bending_adult,
    Box,
    camera_pose,
    Cylinder,
    intrinsics,
    person,
    project,
    render_depth,
)
import numpy as np
import pytest
import yaml

from go_store_nodes.core.locator import (
    APPEARANCE_LENGTH,
    ColorFrame,
    decode_color,
    decode_depth,
    DepthFrame,
    FrameRejectedError,
    LocatorConfig,
    PersonLocator,
)
from go_store_nodes.core.locator.appearance import signature
from go_store_nodes.core.locator.sync import FrameSetAssembler

T0 = 1_700_000_000 * 10**9
PERIOD = 66_666_667
FLOOR = ((0.0, 0.0), (6.0, 5.0))
K = intrinsics()
TOP = camera_pose(3.0, 2.5, 3.5)


def locator(cameras=('top',), **overrides):
    config = dataclasses.replace(LocatorConfig(), **overrides)
    return PersonLocator(config, {c: 15.0 for c in cameras}, *FLOOR)


def frame(camera, k, shapes=(), pose=TOP, seed=None, received_offset_ns=0, depth=None):
    stamp = T0 + k * PERIOD
    if depth is None:
        depth = render_depth(K, pose, shapes, seed=k if seed is None else seed)
    return DepthFrame(camera, stamp, depth, K, pose, stamp + received_offset_ns)


def run(loc, frames_by_k, camera='top', pose=TOP):
    """Feed frames k -> shapes; return every located set."""
    out = []
    for k, shapes in frames_by_k:
        out += loc.add_depth(frame(camera, k, shapes, pose))
    return out


def learn_empty(loc, count=5, camera='top', pose=TOP):
    return run(loc, [(k, ()) for k in range(count)], camera, pose)


def last_detections(sets):
    return [s for s in sets][-1].detections


# Configuration -------------------------------------------------------------------------

def test_config_validates_every_setting_with_its_name():
    with pytest.raises(ValueError, match='cell_m'):
        LocatorConfig(cell_m=0.0)
    with pytest.raises(ValueError, match='absorb_after_s'):
        LocatorConfig(absorb_after_s=math.nan)
    with pytest.raises(ValueError, match='min_person_height_m'):
        LocatorConfig(min_person_height_m=2.0, standing_height_m=1.3)
    with pytest.raises(ValueError, match='min_depth_m'):
        LocatorConfig(min_depth_m=5.0, max_depth_m=4.0)
    assert all(info.description for info in LocatorConfig.fields())


def test_shipped_parameters_are_the_core_defaults(repo):
    values = yaml.safe_load((repo / 'config' / 'go_store.yaml').read_text())[
        'person_locator']['ros__parameters']
    config = LocatorConfig(**{f.name: values[f.name] for f in LocatorConfig.fields()})
    assert config == LocatorConfig()


# Decoding ------------------------------------------------------------------------------

def test_depth_decoding_handles_endianness_padding_and_nan():
    mm = np.array([[0, 1000, 2500], [65535, 1, 3000]], dtype='<u2')
    padded = np.zeros((2, 8), np.uint8)
    padded[:, :6] = mm.view(np.uint8)
    metres = decode_depth('16UC1', 2, 3, 8, False, padded.tobytes())
    np.testing.assert_allclose(metres, mm * 0.001, rtol=1e-6)
    big = decode_depth('16UC1', 2, 3, 6, True, mm.astype('>u2').tobytes())
    np.testing.assert_allclose(big, metres)
    floats = np.array([[np.nan, 1.5], [np.inf, -1.0]], dtype='<f4')
    assert decode_depth('32FC1', 2, 2, 8, False, floats.tobytes()).tolist() == [[0.0, 1.5],
                                                                                [0.0, 0.0]]


@pytest.mark.parametrize('encoding, height, width, step, size, reason', [
    ('rgb8', 2, 2, 6, 12, 'wrong_encoding'),
    ('16UC1', 2, 3, 6, 10, 'malformed'),
    ('16UC1', 2, 3, 4, 12, 'malformed'),
    ('16UC1', 0, 3, 6, 0, 'malformed'),
])
def test_depth_decoding_refuses_what_it_cannot_read(encoding, height, width, step, size,
                                                    reason):
    with pytest.raises(FrameRejectedError) as error:
        decode_depth(encoding, height, width, step, False, bytes(size))
    assert error.value.reason == reason


def test_colour_decoding_turns_bgr_into_rgb():
    bgr = np.array([[[10, 20, 30], [40, 50, 60]]], np.uint8)
    assert decode_color('bgr8', 1, 2, 6, bgr.tobytes()).tolist() == [[[30, 20, 10],
                                                                      [60, 50, 40]]]
    with pytest.raises(FrameRejectedError, match='mono8'):
        decode_color('mono8', 1, 2, 2, bytes(4))


# Locating ------------------------------------------------------------------------------

def test_empty_floor_with_furniture_gives_no_one():
    shelf = Box((1.0, 0.5, 0.0), (2.0, 1.0, 1.8))
    loc = locator()
    sets = run(loc, [(k, (shelf,)) for k in range(40)])
    assert len(sets) == 40
    assert all(not s.detections for s in sets)


def test_standing_person_is_located_at_the_head_with_height():
    loc = locator()
    learn_empty(loc)
    sets = run(loc, [(k, person(3.3, 2.2, 1.72)) for k in range(5, 10)])
    for located in sets:
        (detection,) = located.detections
        assert math.hypot(detection.x_m - 3.3, detection.y_m - 2.2) < 0.05
        assert detection.height_m == pytest.approx(1.72, abs=0.05)
        assert 0.5 < detection.confidence <= 1.0
        assert detection.camera_ids == ('top',)
        assert 0.08 < detection.area_m2 < 0.3
        assert detection.covariance.shape == (3, 3)
        assert np.all(np.linalg.eigvalsh(detection.covariance) > 0)
        assert detection.appearance == ()          # no colour frames given


def test_tilted_camera_places_people_the_same():
    full = intrinsics(424, 240)
    pose = camera_pose(3.0, 0.3, 3.8, tilt_deg=30.0)
    loc = locator()
    found = []
    for k in range(8):
        scene = person(3.0, 2.6, 1.80) if k >= 5 else ()
        stamp = T0 + k * PERIOD
        depth = render_depth(full, pose, scene, seed=k)
        for located in loc.add_depth(DepthFrame('top', stamp, depth, full, pose, stamp)):
            found += located.detections
    assert len(found) == 3
    for detection in found:
        # Seen from 3 m at 49 deg off vertical: the near side of the head and depth noise
        # along the ray pull the centre towards the camera (-y) by several cm.
        assert abs(detection.x_m - 3.0) < 0.05
        assert -0.15 < detection.y_m - 2.6 < 0.02
        assert detection.height_m == pytest.approx(1.80, abs=0.05)


def test_two_people_touching_are_two_detections():
    loc = locator()
    learn_empty(loc)
    bodies = person(2.8, 2.5, 1.70) + person(3.22, 2.5, 1.62)   # bodies touch (r 0.21)
    detections = sorted(last_detections(run(loc, [(k, bodies) for k in range(5, 8)])),
                        key=lambda d: d.x_m)
    assert len(detections) == 2
    assert abs(detections[0].x_m - 2.8) < 0.06 and abs(detections[1].x_m - 3.22) < 0.06
    assert detections[0].height_m == pytest.approx(1.70, abs=0.05)
    assert detections[1].height_m == pytest.approx(1.62, abs=0.05)


@pytest.mark.parametrize('apart_m, height_m', [(0.33, 1.58), (0.35, 1.55), (0.38, 1.52)])
def test_shorter_person_beside_a_taller_one_is_not_taken_for_a_shoulder(apart_m, height_m):
    # The shorter head tops out about as high as the taller one's shoulder and nearer its
    # head than two people of one height stand: a part beyond a shoulder's reach and
    # larger than a shoulder is a person. With that reach beyond the heads' distance the
    # two are one detection, as before.
    bodies = person(2.8, 2.5, 1.72) + person(2.8 + apart_m, 2.5, height_m)
    for reach_m, expected in ((0.30, 2), (0.50, 1)):
        loc = locator(shoulder_reach_m=reach_m)
        learn_empty(loc)
        detections = sorted(last_detections(run(loc, [(k, bodies) for k in range(5, 8)])),
                            key=lambda d: d.x_m)
        assert len(detections) == expected, reach_m
    assert abs(detections[0].x_m - 2.8) < 0.06
    loc = locator()
    learn_empty(loc)
    second = sorted(last_detections(run(loc, [(k, bodies) for k in range(5, 8)])),
                    key=lambda d: d.x_m)[1]
    assert abs(second.x_m - (2.8 + apart_m)) < 0.06
    assert second.height_m == pytest.approx(height_m, abs=0.05)


def test_an_arm_held_out_at_shoulder_height_is_not_a_person():
    bodies = person(2.8, 2.5, 1.75) + (Box((2.95, 2.45, 1.38), (3.35, 2.55, 1.48)),)
    loc = locator()
    learn_empty(loc)
    detections = last_detections(run(loc, [(k, bodies) for k in range(5, 8)]))
    assert len(detections) == 1
    assert abs(detections[0].x_m - 2.8) < 0.06


@pytest.mark.parametrize('apart_m', [0.22, 0.30, 0.38])
def test_two_people_of_one_height_close_in_one_view_are_two_detections(apart_m):
    # Heads of one height so close that nothing between them drops a head's depth: as
    # two cameras' offset views of one head look. One camera never shows a head twice.
    loc = locator()
    learn_empty(loc)
    bodies = person(2.8, 2.5, 1.72) + person(2.8 + apart_m, 2.5, 1.70)
    detections = sorted(last_detections(run(loc, [(k, bodies) for k in range(5, 8)])),
                        key=lambda d: d.x_m)
    assert len(detections) == 2
    assert abs(detections[0].x_m - 2.8) < 0.08
    assert abs(detections[1].x_m - (2.8 + apart_m)) < 0.08


def test_person_under_a_gap_between_two_views_is_one_detection_between_them():
    # Two cameras 2 m apart at 3 m: at head height their views leave a gap around y = 2.5.
    north, south = camera_pose(3.0, 3.5, 3.0), camera_pose(3.0, 1.5, 3.0)
    loc = locator(('north', 'south'))
    found = []
    for k in range(8):
        scene = person(3.0, 2.5, 1.75) if k >= 5 else ()
        for name, pose in (('north', north), ('south', south)):
            located = loc.add_depth(frame(name, k, scene, pose=pose))
            found += [s.detections for s in located if k >= 5]
    assert len(found) == 3
    for detections in found:
        (detection,) = detections
        assert math.hypot(detection.x_m - 3.0, detection.y_m - 2.5) < 0.15
        assert detection.camera_ids == ('north', 'south')


def test_basket_and_crouching_child_are_not_people_a_bending_adult_is():
    loc = locator()
    learn_empty(loc)
    basket = Box((2.0, 2.0, 0.0), (2.45, 2.3, 0.4))
    child = Cylinder(3.5, 3.0, 0.2, 0.8)
    scene = (basket, child) + bending_adult(2.6, 1.8)
    detections = last_detections(run(loc, [(k, scene) for k in range(5, 8)]))
    assert len(detections) == 1
    (adult,) = detections
    # On the adult: the head is barely above the back here, so the top may be either.
    assert 2.5 < adult.x_m < 3.25 and abs(adult.y_m - 1.8) < 0.1
    assert 0.95 < adult.height_m < 1.2


def test_basket_put_down_joins_the_background_a_person_standing_still_does_not():
    loc = locator(absorb_after_s=2.0)
    learn_empty(loc)
    basket = Box((2.0, 2.0, 0.0), (2.45, 2.3, 0.4))
    scene = (basket,) + person(3.5, 3.0, 1.75)
    camera = loc.cameras['top']
    first = camera.process(frame('top', 5, scene))
    basket_pixels = first.foreground_pixels
    sets = run(loc, [(k, scene) for k in range(6, 6 + 4 * 15)])   # 4 s
    assert all(len(s.detections) == 1 for s in sets), 'the person is never absorbed'
    u, v = project((2.22, 2.15, 0.4), K, TOP)
    assert camera.background is not None
    assert camera.background.depth_m[int(v), int(u)] == pytest.approx(3.1, abs=0.05)
    later = camera.process(frame('top', 200, scene))
    assert later.foreground_pixels < basket_pixels        # only the person is left


def test_background_learned_with_someone_there_recovers_when_they_leave():
    loc = locator(reveal_after_s=0.3)
    present = person(3.0, 2.5, 1.7)
    run(loc, [(k, present) for k in range(5)])      # there from the first frame: background
    gone = run(loc, [(k, ()) for k in range(5, 15)])
    assert all(not s.detections for s in gone)
    back = run(loc, [(k, person(3.0, 2.5, 1.7)) for k in range(15, 18)])
    assert all(len(s.detections) == 1 for s in back)


# Bad input -----------------------------------------------------------------------------

def test_zero_and_nan_depth_frames_are_dropped_and_counted():
    loc = locator()
    learn_empty(loc)
    with pytest.raises(FrameRejectedError) as error:
        loc.add_depth(frame('top', 5, depth=np.zeros((K.height, K.width), np.float32)))
    assert error.value.reason == 'no_depth'
    nan = decode_depth('32FC1', K.height, K.width, K.width * 4, False,
                       np.full((K.height, K.width), np.nan, np.float32).tobytes())
    with pytest.raises(FrameRejectedError):
        loc.add_depth(frame('top', 6, depth=nan))
    assert loc.health.cameras['top'].rejected == {'no_depth': 2}
    assert len(run(loc, [(7, ())])) == 1                     # and it goes on


def test_wrong_size_unknown_camera_out_of_order_and_future_frames_are_dropped():
    loc = locator()
    learn_empty(loc)
    with pytest.raises(FrameRejectedError) as error:
        loc.add_depth(frame('top', 5, depth=np.ones((10, 10), np.float32)))
    assert error.value.reason == 'wrong_size'
    with pytest.raises(FrameRejectedError) as error:
        loc.add_depth(frame('elsewhere', 5))
    assert error.value.reason == 'unknown_camera'
    with pytest.raises(FrameRejectedError) as error:
        loc.add_depth(frame('top', 3))
    assert error.value.reason == 'out_of_order'
    with pytest.raises(FrameRejectedError) as error:
        loc.add_depth(frame('top', 6, received_offset_ns=-2 * 10**9))
    assert error.value.reason == 'future_stamp'
    assert loc.health.cameras['top'].rejected == {'wrong_size': 1, 'out_of_order': 1,
                                                  'future_stamp': 1}
    assert len(run(loc, [(7, ())])) == 1


def test_frame_sets_group_unsynchronised_cameras_and_never_wait_for_a_missing_one():
    side = camera_pose(3.0, 0.3, 3.8, tilt_deg=30.0)
    loc = locator(('top', 'side'))
    sets = []
    for k in range(3):
        sets += loc.add_depth(frame('top', k))
        shifted = frame('side', k, pose=side)
        sets += loc.add_depth(dataclasses.replace(shifted, stamp_ns=shifted.stamp_ns + 20_000_000))
    assert len(sets) == 3
    assert all(s.camera_ids == ('side', 'top') for s in sets)
    assert sets[0].stamp_ns == T0 + 10_000_000               # mean of the two stamps
    # 'side' stops: 'top' alone keeps producing sets, at most tolerance + wait late.
    emitted = []
    for k in range(3, 30):
        for located in loc.add_depth(frame('top', k)):
            emitted.append((k, located))
    assert len(emitted) >= 25
    for k, located in emitted:
        assert located.camera_ids == ('top',)
        assert T0 + k * PERIOD - located.stamp_ns <= loc.config.ns('sync_tolerance_s') + \
            loc.config.ns('max_wait_s') + PERIOD
    # A frame of 'side' for a set already emitted is dropped as late.
    with pytest.raises(FrameRejectedError) as error:
        loc.add_depth(frame('side', 10, pose=side))
    assert error.value.reason == 'late'


def test_flush_emits_a_waiting_set_when_every_camera_went_quiet():
    loc = locator(('top', 'side'))
    assert loc.add_depth(frame('top', 0)) == []              # waits for 'side'
    assert loc.flush(T0 + 50_000_000) == []
    (located,) = loc.flush(T0 + 200_000_000)
    assert located.camera_ids == ('top',)


def test_outage_is_flagged_and_cleared():
    loc = locator(('top', 'side'))
    assert loc.check_health(T0) == []
    learn_empty(loc, 3)                                   # 'top' until T0 + 2 periods
    changes = loc.check_health(T0 + 600_000_000)
    assert [(c.camera_id, c.started) for c in changes] == [('side', True)]
    changes = loc.check_health(T0 + 2 * PERIOD + 800_000_000)     # top quiet 0.8 s
    assert [(c.camera_id, c.started) for c in changes] == [('top', True)]
    assert changes[0].silent_s == pytest.approx(0.8)
    run(loc, [(20, ())])
    changes = loc.check_health(T0 + 20 * PERIOD + 10_000_000)
    assert [(c.camera_id, c.started) for c in changes] == [('top', False)]
    summary = loc.health.cameras['top'].summary()
    assert summary['top.state'] == 'ok' and summary['top.missed_frames'] == '17'
    assert loc.health.cameras['side'].summary()['side.state'] == 'outage'


def test_a_camera_slower_than_its_model_is_not_in_outage_between_frames():
    loc = locator()
    half_second = 500_000_000
    for index in range(4):                                 # 2 fps, as in a reduced bag
        stamp = T0 + index * half_second
        loc.add_depth(DepthFrame('top', stamp, render_depth(K, TOP, (), seed=index), K, TOP,
                                 stamp))
        assert loc.check_health(stamp + 450_000_000) == []
        assert loc.check_health(stamp + 499_000_000) == []
    changes = loc.check_health(T0 + 3 * half_second + 1_300_000_000)
    assert [(c.camera_id, c.started) for c in changes] == [('top', True)]


def test_a_camera_below_its_model_rate_is_measured_at_its_own_rate():
    # Modelled at 15 fps, running at 5 fps (a reduced-rate bag): once 5 intervals are in,
    # its period is the measured one and no frame counts as missed.
    loc = locator(('top',))
    period = 200_000_000
    for k in range(12):
        stamp = T0 + k * period
        loc.add_depth(DepthFrame('top', stamp, render_depth(K, TOP, (), seed=k), K, TOP, stamp))
    health = loc.health.cameras['top']
    assert health.period_ns == period
    assert health.summary()['top.missed_frames'] == '0'
    # A real gap is still counted against the measured period: 3 frames missing.
    stamp = T0 + 15 * period
    loc.add_depth(DepthFrame('top', stamp, render_depth(K, TOP, (), seed=15), K, TOP, stamp))
    assert health.summary()['top.missed_frames'] == '3'


def test_assembler_refuses_bad_settings():
    with pytest.raises(ValueError):
        FrameSetAssembler(('a',), -1, 0, 0)


# Appearance ----------------------------------------------------------------------------

def test_appearance_is_a_unit_norm_colour_signature_of_head_and_shoulders():
    loc = locator()
    learn_empty(loc)
    red = np.zeros((K.height, K.width, 3), np.uint8)
    red[...] = (200, 30, 30)
    colour = ColorFrame('top', T0 + 5 * PERIOD, red, K, TOP)
    loc.add_color(colour)
    (detection,) = last_detections(run(loc, [(5, person(3.0, 2.5))]))
    assert len(detection.appearance) == APPEARANCE_LENGTH
    assert np.linalg.norm(detection.appearance) == pytest.approx(1.0)
    blue = signature(np.tile(np.array([[30, 30, 200]], np.uint8), (50, 1)))
    assert float(np.dot(detection.appearance, blue)) < 0.1
    assert float(np.dot(detection.appearance, detection.appearance)) == pytest.approx(1.0)
    assert signature(np.zeros((3, 3), np.uint8)) == ()


# Blurred views ---------------------------------------------------------------------------
def test_sideways_error_map_grows_with_distance_and_tilt_and_is_inf_out_of_view():
    from go_store_nodes.core.locator.camera import CameraFrameLocator, FloorGrid
    grid = FloorGrid.covering(*FLOOR, 0.05)
    config = LocatorConfig()
    error = CameraFrameLocator('top', grid, config).sideways_map(K, TOP).reshape(grid.ny,
                                                                                grid.nx)

    def at(x, y):
        return float(error[int(y / 0.05), int(x / 0.05)])

    # Straight below the camera a depth error is vertical: no sideways error at all.
    assert at(3.0, 2.5) < 0.005
    assert at(3.0, 2.5) < at(3.8, 2.5) < at(4.4, 2.5)
    assert math.isinf(at(0.1, 0.1))                       # outside the view
    assert at(3.8, 2.5) == pytest.approx(at(2.2, 2.5), rel=0.05)   # symmetric


FAR_VIEWS = {'west': camera_pose(0.2, 2.5, 4.0, tilt_deg=55.0, yaw_deg=-90.0),
             'east': camera_pose(5.8, 2.5, 4.0, tilt_deg=55.0, yaw_deg=90.0)}


def _blurred_scene_detections(with_top=True, **overrides):
    """Locate a person seen by two far, tilted views (and a camera 2.2 m above the head)."""
    full = intrinsics(424, 240)
    poses = ({'top': camera_pose(3.0, 2.5, 4.0)} if with_top else {}) | FAR_VIEWS
    loc = locator(tuple(poses), **overrides)
    found = []
    for k in range(10):
        scene = person(3.0, 2.5, 1.75) if k >= 5 else ()
        stamp = T0 + k * PERIOD
        for name, pose in poses.items():
            depth = render_depth(full, pose, scene, seed=100 * k + len(name))
            for located in loc.add_depth(DepthFrame(name, stamp, depth, full, pose, stamp)):
                if k >= 6:
                    found.append(located.detections)
    return found, loc


def test_points_a_sharper_view_covers_are_not_taken_from_far_tilted_views():
    found, loc = _blurred_scene_detections()
    assert found and loc.points_blurred > 0
    for detections in found:
        (detection,) = detections
        assert math.hypot(detection.x_m - 3.0, detection.y_m - 2.5) < 0.08
        assert detection.camera_ids == ('top',)     # the blurred views add nothing here
    # Without the limit every view's points are used.
    off, loc = _blurred_scene_detections(max_sideways_error_m=10.0)
    assert loc.points_blurred == 0
    assert all(set(d.camera_ids) == {'top', 'east', 'west'} for ds in off for d in ds)


def test_where_only_blurred_views_see_their_points_are_kept():
    found, _ = _blurred_scene_detections(with_top=False)
    assert found
    for detections in found:
        (detection,) = detections
        assert math.hypot(detection.x_m - 3.0, detection.y_m - 2.5) < 0.15
        assert set(detection.camera_ids) == {'east', 'west'}
