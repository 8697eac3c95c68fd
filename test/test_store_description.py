"""The reference store description is realistic, and broken descriptions are refused."""

import copy
import itertools
import math

import numpy as np
import pytest
import yaml

from go_store_nodes.core.store import (
    load_store_description,
    parse_store_description,
    static_transforms,
    StoreDescriptionError,
)


@pytest.fixture(scope='module')
def raw(store_path):
    return yaml.safe_load(store_path.read_text())


def _floor_footprint(camera, height_above_floor_m):
    """Rectangle of map floor (at a height) the depth image sees: (xmin, xmax, ymin, ymax)."""
    depth = camera.model.depth
    corners = [(0, 0), (depth.width, 0), (0, depth.height), (depth.width, depth.height)]
    t = camera.t_map_depth
    points = []
    for u, v in corners:
        ray = t.rotation @ np.array([(u - depth.cx) / depth.fx, (v - depth.cy) / depth.fy, 1.0])
        scale = (height_above_floor_m - t.translation[2]) / ray[2]
        points.append(t.translation + scale * ray)
    points = np.array(points)
    return points[:, 0].min(), points[:, 0].max(), points[:, 1].min(), points[:, 1].max()


def test_reference_store_cameras(store):
    assert len(store.cameras) >= 8
    for camera in store.cameras:
        model = camera.model
        assert (model.depth.width, model.depth.height, model.fps) == (424, 240, 15.0)
        hfov_deg = math.degrees(2 * math.atan(model.depth.width / 2 / model.depth.fx))
        assert 85.0 <= hfov_deg <= 91.0  # D435 depth: ~87 degrees
        assert 3.0 <= camera.t_map_depth.translation[2] <= 4.0   # ceiling mount
        # Looking down, tilted by at most 30 degrees: the optical z axis towards the floor.
        assert camera.t_map_depth.rotation[:, 2] @ [0.0, 0.0, -1.0] >= math.cos(
            math.radians(30.0)) - 1e-9
    # Overlapping views: at torso height (1.2 m) every camera shares floor with a neighbour.
    boxes = {c.camera_id: _floor_footprint(c, 1.2) for c in store.cameras}
    for camera_id, (x0, x1, y0, y1) in boxes.items():
        overlaps = [other for other, (a0, a1, b0, b1) in boxes.items() if other != camera_id
                    and min(x1, a1) - max(x0, a0) > 0.1 and min(y1, b1) - max(y0, b0) > 0.1]
        assert overlaps, f'{camera_id} overlaps no other camera'


def test_reference_store_shelves_and_catalog(store):
    assert len(store.shelves) >= 8
    load_cells = set()
    for shelf in store.shelves:
        assert 3 <= len(shelf.bins) <= 5, shelf.shelf_id
        for shelf_bin in shelf.bins:
            load_cells.add(shelf_bin.load_cell)
            assert np.all(shelf_bin.size_m() > 0)
            assert np.all(np.asarray(shelf_bin.max_m) <= np.asarray(shelf.size_m) / [2, 1, 1]
                          + 1e-9), f'{shelf_bin.bin_id} sticks out of {shelf.shelf_id}'
    assert len(load_cells) == len(store.bins())
    assert len(store.catalog) >= 40
    products = list(store.catalog.values())
    same_brand_flavours = [(a.sku, b.sku) for a, b in itertools.combinations(products, 2)
                           if a.brand == b.brand and a.category == b.category
                           and a.flavour != b.flavour
                           and a.appearance.shape == b.appearance.shape
                           and abs(a.unit_weight_g - b.unit_weight_g) <= a.weight_tolerance_g]
    assert len(same_brand_flavours) >= 5
    near_equal_weight_different_items = [
        (a.sku, b.sku) for a, b in itertools.combinations(products, 2)
        if a.category != b.category
        and abs(a.unit_weight_g - b.unit_weight_g) <= a.weight_tolerance_g + b.weight_tolerance_g]
    assert len(near_equal_weight_different_items) >= 3
    stocked = {sku for b in store.bins().values() for sku in b.skus}
    assert stocked == set(store.catalog)
    assert store.gates_of_kind('entry') and store.gates_of_kind('exit')


def test_static_transforms_cover_every_camera_and_shelf(store):
    children = [child for _, child, _ in static_transforms(store)]
    assert len(children) == len(set(children)) == 2 * len(store.cameras) + len(store.shelves)
    colour = store.cameras[0].t_map_color.translation - store.cameras[0].t_map_depth.translation
    assert np.linalg.norm(colour) == pytest.approx(0.015)


def _broken(raw, edit):
    data = copy.deepcopy(raw)
    edit(data)
    return data


@pytest.mark.parametrize('edit, message', [
    (lambda d: d['cameras'][3].pop('pose'), r'cameras\[3\] \(cam_04\): missing extrinsic'),
    (lambda d: d['cameras'][1]['pose'].update(rotation={
        'matrix': [[1.0, 0.2, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]}),
     r'cameras\[1\] \(cam_02\)\.pose\.rotation: matrix: rotation matrix is not orthonormal'),
    (lambda d: d['cameras'][0]['pose']['rotation'].update(quaternion_xyzw=[0, 0, 0, 1]),
     'exactly one of'),
    (lambda d: d['cameras'][0]['pose'].update(translation_m=[1.0, 'x', 3.0]), 'translation_m'),
    (lambda d: d['shelves'][0]['bins'][0]['skus'].append('no_such_sku'),
     "unknown SKU 'no_such_sku'"),
    (lambda d: d['shelves'][1]['bins'][0].update(id='shelf_01_bin_1'), 'duplicate bin id'),
    (lambda d: d['cameras'][0].update(model='d999'), "unknown camera model 'd999'"),
    (lambda d: d.update(gates=[g for g in d['gates'] if g['kind'] != 'exit']),
     'at least one exit gate'),
    (lambda d: d['catalog'][0].update(unit_weight_g=-3), 'unit_weight_g'),
])
def test_broken_descriptions_are_refused_with_the_field_named(raw, edit, message):
    with pytest.raises(StoreDescriptionError, match=message):
        parse_store_description(_broken(raw, edit), 'store.yaml')


def test_extrinsics_file_replaces_description_poses(raw, tmp_path):
    (tmp_path / 'extrinsics.yaml').write_text(yaml.safe_dump({'cameras': {'cam_02': {'pose': {
        'translation_m': [3.7, 1.1, 2.95], 'rotation': {'rpy_deg': [180.0, 0.0, 0.0]}}}}}))
    data = _broken(raw, lambda d: d.update(extrinsics_file='extrinsics.yaml'))
    data['cameras'][1].pop('pose')
    (tmp_path / 'store.yaml').write_text(yaml.safe_dump(data))
    store = load_store_description(tmp_path / 'store.yaml')
    np.testing.assert_allclose(store.camera('cam_02').t_map_depth.translation, [3.7, 1.1, 2.95])
    assert store.extrinsics_source['cam_02'].endswith('extrinsics.yaml')
    assert store.extrinsics_source['cam_01'] == 'store_description'


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(StoreDescriptionError, match='not found'):
        load_store_description(tmp_path / 'nope.yaml')
    (tmp_path / 'bad.yaml').write_text('cameras: [\n')
    with pytest.raises(StoreDescriptionError, match='not valid YAML'):
        load_store_description(tmp_path / 'bad.yaml')
