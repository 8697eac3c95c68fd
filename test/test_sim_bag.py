"""`go-store simulate` bags: camera timing in headers and log times, --cameras, same bytes."""

import hashlib
import json

import pytest

from go_store_nodes.bagio.reader import messages, summarize
from go_store_nodes.cli import main

CAMERAS = ('cam_01', 'cam_05')


def _simulate(repo, out, *extra):
    code = main(['simulate', str(repo / 'config' / 'scenarios' / 'smoke.yaml'), '--out',
                 str(out), '--truth', str(out.parent / 'truth.json'), '--duration', '3',
                 '--image-scale', '0.1', '--quiet', *extra])
    assert code == 0


def _stamp(message):
    return message.header.stamp.sec * 10 ** 9 + message.header.stamp.nanosec


@pytest.fixture(scope='module')
def bag(repo, tmp_path_factory):
    out = tmp_path_factory.mktemp('first') / 'bag'
    _simulate(repo, out, '--cameras', ','.join(CAMERAS))
    return out


def test_same_scenario_same_bytes(repo, bag, tmp_path):
    again = tmp_path / 'bag'
    _simulate(repo, again, '--cameras', ','.join(CAMERAS))
    for name in ('bag/bag.mcap', 'bag/metadata.yaml', 'truth.json'):
        first = hashlib.md5((bag.parent / name).read_bytes()).hexdigest()
        assert hashlib.md5((again.parent / name).read_bytes()).hexdigest() == first, name


def test_only_the_listed_cameras_are_written(bag):
    topics = summarize(bag)
    cameras = {t.split('/')[2] for t in topics if t.startswith('/cameras/')}
    assert cameras == set(CAMERAS)
    assert topics['/tf_static'].count == 1
    assert sum(t.startswith('/shelves/') for t in topics) == 8
    for camera in CAMERAS:
        assert topics[f'/cameras/{camera}/depth/image_rect_raw'].count >= 40
    # /tf_static still has every camera's frames.
    _, _, tf = next(messages(bag, ['/tf_static']))
    children = {t.child_frame_id for t in tf.transforms}
    assert any(child.startswith('cam_08') for child in children)


def test_unknown_camera_is_refused(repo, tmp_path, capsys):
    code = main(['simulate', str(repo / 'config' / 'scenarios' / 'smoke.yaml'), '--out',
                 str(tmp_path / 'bag'), '--truth', str(tmp_path / 'truth.json'),
                 '--duration', '1', '--cameras', 'cam_01,cam_99'])
    assert code == 2
    assert 'cam_99' in capsys.readouterr().err


def test_camera_headers_carry_the_camera_clock_and_arrive_later(bag):
    truth = json.loads((bag.parent / 'truth.json').read_text())
    clocks = {c['camera_id']: c for c in truth['camera_clocks']}
    previous = 0
    depth, colour = {}, {}
    for topic, log_ns, message in messages(bag):
        assert log_ns >= previous, 'messages are stored in log-time order'
        previous = log_ns
        if not topic.startswith('/cameras/'):
            continue
        camera = topic.split('/')[2]
        stamp = _stamp(message)
        # The capture's true time is a world step; the header is on the camera's clock.
        elapsed = stamp - clocks[camera]['offset_ns'] - truth['start_ns']
        true_ns = truth['start_ns'] + round(elapsed / (1 + clocks[camera]['drift_ppm'] * 1e-6))
        step = (true_ns - truth['start_ns']) * 60 / 1e9
        assert abs(step - round(step)) < 1e-3
        assert log_ns - true_ns > 20e6, 'transport latency'
        if topic.endswith('depth/image_rect_raw'):
            depth[(camera, log_ns)] = stamp
        elif topic.endswith('color/image_raw'):
            colour[(camera, log_ns)] = stamp
    # Depth and colour of one capture share the stamp (and the arrival).
    assert depth == colour
    # Cameras are not aligned: no header stamp is shared between the two cameras.
    stamps = {camera: {s for (c, _), s in depth.items() if c == camera} for camera in CAMERAS}
    assert not stamps[CAMERAS[0]] & stamps[CAMERAS[1]]
