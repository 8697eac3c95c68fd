"""The committed URDF is the one generated from the store description, joint for frame."""

import xml.etree.ElementTree as ElementTree

from go_store_nodes.cli import main as go_store
from go_store_nodes.core.store import load_store_description, static_transforms
from go_store_nodes.core.transforms import rotation_from_rpy, Transform
from go_store_nodes.core.urdf import store_urdf


def test_committed_urdf_is_generated_from_the_description(repo, store_path):
    committed = (repo / 'urdf' / 'store.urdf').read_text()
    assert committed == store_urdf(load_store_description(store_path)), \
        'urdf/store.urdf is stale: run `go-store urdf`'
    assert go_store(['urdf', '--check']) == 0


def test_urdf_joints_are_the_published_transforms(store_path):
    store = load_store_description(store_path)
    root = ElementTree.fromstring(store_urdf(store))
    joints = {}
    for joint in root.iter('joint'):
        origin = joint.find('origin')
        xyz = [float(v) for v in origin.get('xyz').split()]
        rpy = [float(v) for v in origin.get('rpy').split()]
        joints[(joint.find('parent').get('link'), joint.find('child').get('link'))] = \
            Transform(rotation_from_rpy(*rpy), xyz)
    expected = static_transforms(store)
    assert set(joints) == {(parent, child) for parent, child, _ in expected}
    for parent, child, transform in expected:
        assert joints[(parent, child)].is_close(transform, 1e-5, 1e-6), child
    links = {link.get('name') for link in root.iter('link')}
    assert links == {store.map_frame} | {child for _, child, _ in expected}
    shelf = next(link for link in root.iter('link') if link.get('name') == 'shelf_01')
    assert len(shelf.findall('visual')) == 1 + len(store.shelf('shelf_01').bins)


def test_check_detects_a_stale_urdf(tmp_path, store_path):
    out = tmp_path / 'store.urdf'
    out.write_text('<robot name="old"/>\n')
    assert go_store(['urdf', '--out', str(out), '--check']) == 1
    assert go_store(['urdf', '--out', str(out)]) == 0
    assert go_store(['urdf', '--out', str(out), '--check']) == 0
