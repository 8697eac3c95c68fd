"""Camera coverage: floor and bin-front figures on tiny hand-built stores, and the CLI."""

import copy

import cv2
import numpy as np
import pytest
import yaml

from go_store_nodes.cli import main
from go_store_nodes.core.coverage import (
    blocked_by_shelves,
    check_thresholds,
    compute_coverage,
    CoverageConfig,
    CoverageThresholds,
    floor_coverage,
    gate_coverage,
    heat_map,
)
from go_store_nodes.core.store import load_store_description, parse_store_description

DOWN = {'rpy_deg': [180.0, 0.0, 0.0]}   # optical z to the floor, image x along map x


def _intrinsics(tan_half_fov):
    # 100 x 100 px; the image spans x/z in [-tan_half_fov, tan_half_fov).
    f = 50.0 / tan_half_fov
    return {'width': 100, 'height': 100, 'fx': f, 'fy': f, 'cx': 49.5, 'cy': 49.5,
            'distortion_model': 'plumb_bob', 'd': [0.0] * 5}


def tiny_store(cameras, wall_height_m=2.9, depth_range_m=(0.3, 10.0)):
    """Build a 4 m x 2 m store split by a shelf 0.2 m deep along x = 1.9..2.1 m, front east.

    One bin, 1 m wide and 0.5 m tall, faces east at x = 2.1 m.
    """
    return {
        'store': {'name': 'tiny', 'map_frame': 'map', 'size_m': [4.0, 2.0],
                  'currency': 'EUR'},
        'camera_models': {'wide': {
            'fps': 15.0, 'depth_range_m': list(depth_range_m),
            'depth': _intrinsics(1.0), 'color': _intrinsics(2.0),
            'depth_to_color': {'translation_m': [0.0, 0.0, 0.0],
                               'rotation': {'rpy_deg': [0.0, 0.0, 0.0]}}}},
        'cameras': [{'id': camera_id, 'model': 'wide',
                     'pose': {'translation_m': list(position), 'rotation': rotation}}
                    for camera_id, position, rotation in cameras],
        # Shelf frame: x along map y, y into the shelf = map -x; front edge at x = 2.1.
        'shelves': [{'id': 'divider', 'size_m': [2.0, 0.2, wall_height_m],
                     'pose': {'translation_m': [2.1, 1.0, 0.0],
                              'rotation': {'rpy_deg': [0.0, 0.0, 90.0]}},
                     'bins': [{'id': 'divider_bin', 'load_cell': 'lc', 'skus': ['thing'],
                               'min_m': [-0.5, 0.02, 0.5], 'max_m': [0.5, 0.18, 1.0]}]}],
        'gates': [{'id': 'in', 'kind': 'entry', 'min_m': [0.0, 0.0], 'max_m': [0.5, 0.5]},
                  {'id': 'out', 'kind': 'exit', 'min_m': [3.5, 0.0], 'max_m': [4.0, 0.5]}],
        'catalog': [{'sku': 'thing', 'name': 'Thing', 'brand': 'B', 'flavour': 'f',
                     'category': 'c', 'unit_weight_g': 100.0, 'weight_tolerance_g': 2.0,
                     'price_cents': 100,
                     'appearance': {'shape': 'box', 'size_m': [0.1, 0.1, 0.1],
                                    'color_rgb': [1, 2, 3], 'accent_rgb': [4, 5, 6],
                                    'pattern': 'solid'}}],
    }


def _store(*args, **kwargs):
    return parse_store_description(tiny_store(*args, **kwargs))


WEST = ('west', (1.0, 1.0, 3.0), DOWN)
EAST = ('east', (3.0, 1.0, 3.0), DOWN)


def test_field_of_view_bounds_the_floor_seen():
    # 4 x 2 m at 5 cm: 3200 cells, the divider covers 4 columns (80 cells), 3040 free.
    # At 2 m above the floor the west camera (1 m below it, tan half-FOV 1) sees x < 2 m:
    # the 38 free columns west of the divider, half of the free floor.
    floor = floor_coverage(_store([WEST]), 2.0)
    assert int(floor.free.sum()) == 3040
    assert floor.share(1) == pytest.approx(0.5)
    assert floor.share(2) == 0.0
    assert floor.counts[:, :38].min() == 1 and floor.counts[:, 38:].max() == 0


def test_a_tall_shelf_hides_the_floor_behind_it():
    # At 0.5 m the west camera's footprint reaches x = 3.5 m, but a 2.9 m shelf hides all
    # of the east half; a 0.4 m one hides nothing at 0.5 m.
    tall = floor_coverage(_store([WEST], wall_height_m=2.9), 0.5)
    low = floor_coverage(_store([WEST], wall_height_m=0.4), 0.5)
    assert tall.share(1) == pytest.approx(0.5)
    assert tall.counts[:, 42:].max() == 0
    # Low divider: seen up to x = 3.5 m (column 70), 66 of the 76 free columns.
    assert low.counts[:, 42:70].min() == 1 and low.counts[:, 70:].max() == 0
    assert low.share(1) == pytest.approx(66 / 76)


def test_two_cameras_count_twice_only_where_both_see():
    both_tall = floor_coverage(_store([WEST, EAST]), 0.5)
    assert both_tall.share(1) == pytest.approx(1.0)
    assert both_tall.share(2) == 0.0          # the divider keeps each on its own side
    both_low = floor_coverage(_store([WEST, EAST], wall_height_m=0.4), 2.0)
    # At 2 m each sees a 2 m square: only the divider's columns would be shared.
    assert both_low.share(2) == 0.0 and both_low.share(1) == pytest.approx(1.0)
    # At 0.5 m over a low divider: west sees x < 3.5, east x >= 0.5; both see columns
    # 10-37 and 42-69, 56 of the 76 free columns.
    overlap = floor_coverage(_store([WEST, EAST], wall_height_m=0.4), 0.5)
    assert overlap.share(2) == pytest.approx(56 / 76)
    assert overlap.counts[:, 10:38].min() == 2 and overlap.counts[:, :10].max() == 1


def test_depth_range_limits_what_counts():
    # 1 m below the camera is outside a 1.2..10 m range; 2 m below is inside it.
    near_limited = _store([WEST], depth_range_m=(1.2, 10.0))
    assert floor_coverage(near_limited, 2.0).share(1) == 0.0
    assert floor_coverage(near_limited, 1.0).share(1) > 0.0
    far_limited = _store([WEST], depth_range_m=(0.3, 1.5))
    assert floor_coverage(far_limited, 1.0).share(1) == 0.0   # 2 m > 1.5 m


def test_bin_front_seen_from_the_front_not_through_the_shelf():
    # The bin faces east: the east camera sees all of it, the west one only the shelf.
    report = compute_coverage(_store([WEST, EAST]))
    (entry,) = report.bins
    assert (entry.bin_id, entry.share_1, entry.share_2) == ('divider_bin', 1.0, 0.0)
    assert entry.cameras == ('east',)


def test_bin_front_needs_the_colour_view():
    # Colour camera turned away (looking up): nothing seen.
    up = ('up', (3.0, 1.0, 2.5), {'rpy_deg': [0.0, 0.0, 0.0]})
    assert compute_coverage(_store([up])).bins[0].share_1 == 0.0
    # Two cameras east of the face: every sample seen twice.
    east2 = ('east2', (3.5, 1.0, 2.5), DOWN)
    report = compute_coverage(_store([EAST, east2]))
    assert report.bins[0].share_2 == 1.0


def test_colour_stream_pose_includes_depth_to_color():
    # Move the colour frame 10 m along the depth x axis: the face leaves the colour image
    # even though the depth pose is unchanged.
    data = tiny_store([EAST])
    data['camera_models']['wide']['depth_to_color']['translation_m'] = [10.0, 0.0, 0.0]
    assert compute_coverage(parse_store_description(data)).bins[0].share_1 == 0.0


def test_occlusion_segment_test():
    store = _store([WEST])
    west, east = np.array([1.0, 1.0, 3.0]), np.array([3.0, 1.0, 3.0])
    points = np.array([[3.0, 1.0, 0.5],     # behind the 2.9 m divider
                       [1.5, 1.0, 0.5],     # same side
                       [3.0, 1.0, 2.95],    # above the divider
                       [2.1, 1.0, 1.0]])    # on the divider's east face
    assert blocked_by_shelves(west, points, store.shelves).tolist() == [
        True, False, False, True]
    # Touching the face from its own side does not block.
    assert blocked_by_shelves(east, points[3:], store.shelves).tolist() == [False]


def test_thresholds_name_each_missed_figure():
    report = compute_coverage(_store([WEST, EAST]), CoverageConfig(heights_m=(0.5, 1.8)))
    passing = CoverageThresholds(height_m=0.5, min_floor_1=0.99, min_bin_1=1.0)
    assert check_thresholds(report, passing) == []
    failing = CoverageThresholds(height_m=0.5, min_floor_2=0.5, min_bin_2=0.9)
    failures = check_thresholds(report, failing)
    assert len(failures) == 2
    assert 'floor at 0.5 m seen by >= 2' in failures[0]
    assert 'divider_bin front seen by >= 2' in failures[1]
    with pytest.raises(KeyError, match='no floor coverage at 1.2'):
        check_thresholds(report, CoverageThresholds(height_m=1.2, min_floor_1=0.5))


def test_gate_zones_count_only_near_depth_cameras():
    # The west camera (1 m, 1 m, 3 m) sees the entry zone (0..0.5 m) from about 1.8 m
    # away at head height and not the exit zone (3.5..4 m) at all; the east one sees it.
    west_only = {g.gate_id: g for g in gate_coverage(_store([WEST]))}
    assert west_only['in'].share_near == 1.0 and west_only['in'].cameras == ('west',)
    assert west_only['out'].share_near == 0.0 and west_only['out'].cameras == ()
    both = {g.gate_id: g for g in gate_coverage(_store([WEST, EAST]))}
    assert both['out'].share_near == 1.0 and both['out'].cameras == ('east',)
    # Farther than gate_near_m counts for nothing: a far view of the door is no view.
    far = {g.gate_id: g for g in gate_coverage(_store([WEST, EAST]),
                                               CoverageConfig(gate_near_m=1.0))}
    assert far['in'].share_near == 0.0 and far['out'].share_near == 0.0
    report = compute_coverage(_store([WEST]))
    failures = check_thresholds(report, CoverageThresholds(min_gate_near=1.0))
    assert failures == ['out (exit) seen by a depth camera within 4.5 m: 0.0% < 100.0%']


@pytest.mark.parametrize('kwargs, message', [
    ({'cell_m': 0.0}, 'cell_m'), ({'heights_m': ()}, 'heights_m'),
    ({'heights_m': (float('nan'),)}, 'heights_m'), ({'face_step_m': 2.0}, 'face_step_m'),
    ({'face_offset_m': 0.0}, 'face_offset_m'), ({'gate_near_m': 0.1}, 'gate_near_m')])
def test_config_is_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CoverageConfig(**kwargs)


def test_thresholds_are_shares():
    with pytest.raises(ValueError, match='min_floor_2'):
        CoverageThresholds(min_floor_2=80.0)


def test_heat_map_marks_counts_and_cameras():
    store = _store([WEST])
    floor = floor_coverage(store, 2.0)
    image = heat_map(store, floor, pixels_per_m=50.0)
    assert image.dtype == np.uint8 and image.shape[2] == 3
    # Margin 40 px; 1 m east, 0.5 m north of the south-west corner: seen once (orange);
    # 3.5 m east: unseen (red).
    seen = image[40 + 75, 40 + 70]
    unseen = image[40 + 75, 40 + 175]
    assert tuple(seen) == (40, 170, 240) and tuple(unseen) == (40, 40, 200)


def test_cli_prints_writes_png_and_fails_below_threshold(tmp_path, capsys):
    path = tmp_path / 'store.yaml'
    path.write_text(yaml.safe_dump(tiny_store([WEST, EAST])))
    png = tmp_path / 'coverage.png'
    assert main(['coverage', '--store', str(path), '--png', str(png), '--height', '0.5',
                 '--min-floor-1', '0.99', '--min-bin-1', '1.0']) == 0
    out = capsys.readouterr().out
    assert 'tiny: 2 cameras' in out and 'divider_bin' in out and '0.50' in out
    assert cv2.imread(str(png)) is not None
    assert main(['coverage', '--store', str(path), '--min-bin-2', '1.0']) == 1
    assert 'BELOW THRESHOLD: divider_bin front seen by >= 2' in capsys.readouterr().out
    assert main(['coverage', '--store', str(path), '--min-floor-1', '99']) == 2
    assert main(['coverage', '--store', str(path), '--min-gate-near', '1.0',
                 '--gate-near', '1.0']) == 1
    assert 'BELOW THRESHOLD: in (entry) seen by a depth camera within 1 m' in \
        capsys.readouterr().out


def test_reference_store_meets_its_coverage_targets(store_path):
    """The committed layout meets the targets of config/store.yaml's header.

    >= 99 % / >= 80 % of the floor at 1.8 m, every bin front twice, and every gate zone
    seen by a depth camera within 4.5 m.
    """
    store = load_store_description(store_path)
    report = compute_coverage(store)
    thresholds = CoverageThresholds(height_m=1.8, min_floor_1=0.99, min_floor_2=0.80,
                                    min_bin_2=1.0, min_gate_near=1.0)
    assert check_thresholds(report, thresholds) == []
    assert len(report.bins) == sum(len(s.bins) for s in store.shelves)


def test_removing_a_camera_from_the_reference_store_is_noticed(store_path):
    # The figures move with the layout: the layout has no camera to spare at these targets.
    data = yaml.safe_load(store_path.read_text())
    thresholds = CoverageThresholds(height_m=1.8, min_floor_1=0.99, min_floor_2=0.80,
                                    min_bin_2=1.0, min_gate_near=1.0)
    missed = []
    for index in range(len(data['cameras'])):
        fewer = copy.deepcopy(data)
        del fewer['cameras'][index]
        report = compute_coverage(parse_store_description(fewer),
                                  CoverageConfig(cell_m=0.1))
        missed.append(bool(check_thresholds(report, thresholds)))
    assert all(missed)
