"""`go-store track-video` and the image-plane linking behind it.

The video is OpenCV's vtest.avi (opencv-doc examples/data, found through
GO_STORE_OPENCV_DATA as in test_calibration_stereo_images.py); without it the video tests
are skipped. Only the first 60 frames are read, so each test takes seconds.
"""

import importlib.util
import os
import pathlib

import numpy as np
import pytest

from go_store_nodes.cli import main
from go_store_nodes.core.video import (
    BoxDetection,
    hsv_signature,
    non_max_suppression,
    parse_mot,
    video_tracker_config,
    VideoLinker,
)
from go_store_nodes.core.video.linking import SIGNATURE_LENGTH

ENV = 'GO_STORE_OPENCV_DATA'
FRAMES = 60
WIDTH, HEIGHT = 768, 576


@pytest.fixture(scope='module')
def vtest() -> pathlib.Path:
    where = os.environ.get(ENV)
    if not where:
        pytest.skip(f'{ENV} is not set: point it at opencv-doc examples/data (vtest.avi)')
    path = pathlib.Path(where) / 'vtest.avi'
    if not path.is_file():
        pytest.fail(f'{ENV}={where} has no vtest.avi')
    return path


def _has_hog() -> bool:
    import cv2
    return hasattr(cv2, 'HOGDescriptor')


def _check_mot_file(path: pathlib.Path, frames: int) -> list:
    rows = parse_mot(path.read_text(), str(path))
    assert rows, 'no track written'
    for line in path.read_text().splitlines():
        assert line.endswith(',-1,-1,-1') and len(line.split(',')) == 10, line
    for row in rows:
        assert 1 <= row.frame <= frames
        assert row.track_id >= 1 and 0.0 < row.conf <= 1.0
        x0, y0, x1, y1 = row.corners
        assert 0.0 <= x0 < x1 <= WIDTH and 0.0 <= y0 < y1 <= HEIGHT
    pairs = [(r.frame, r.track_id) for r in rows]
    assert len(pairs) == len(set(pairs)), 'a track twice in one frame'
    return rows


def test_motion_detector_on_the_first_60_frames(vtest, tmp_path, capsys):
    out, strip = tmp_path / 'tracks.txt', tmp_path / 'strip.png'
    assert main(['track-video', str(vtest), '--out', str(out), '--detector', 'motion',
                 '--frames', str(FRAMES), '--strip', str(strip), '--strip-count', '4']) == 0
    printed = capsys.readouterr().out
    assert f'{FRAMES} frames (768x576, 10 fps)' in printed and 'frames/s' in printed
    rows = _check_mot_file(out, FRAMES)
    # People walk through the whole slice: tracks last, and several people are found.
    ids = {r.track_id for r in rows}
    lengths = sorted((sum(1 for r in rows if r.track_id == i) for i in ids), reverse=True)
    assert len(ids) >= 3 and lengths[0] >= 20, lengths
    import cv2
    image = cv2.imread(str(strip))
    assert image.shape == (2 * HEIGHT // 2, 3 * WIDTH // 2, 3)


def test_saved_detections_link_to_the_same_tracks(vtest, tmp_path, capsys):
    first, again, dets = tmp_path / 'a.txt', tmp_path / 'b.txt', tmp_path / 'det.txt'
    assert main(['track-video', str(vtest), '--out', str(first), '--detector', 'motion',
                 '--frames', '30', '--save-detections', str(dets)]) == 0
    detections = parse_mot(dets.read_text())
    assert detections and all(r.track_id == -1 and r.frame <= 30 for r in detections)
    assert main(['track-video', str(vtest), '--out', str(again), '--frames', '30',
                 '--load-detections', str(dets)]) == 0
    assert again.read_text() == first.read_text()
    # Scored against themselves the tracks are perfect; the scores are printed.
    assert main(['track-video', str(vtest), '--out', str(again), '--frames', '30',
                 '--load-detections', str(dets), '--truth', str(first)]) == 0
    assert 'MOTA 1.000, IDF1 1.000, HOTA 1.000' in capsys.readouterr().out


@pytest.mark.skipif(not _has_hog(), reason='this OpenCV build has no HOGDescriptor '
                    '(OpenCV 5 moved it out of the main modules)')
def test_hog_detector_on_the_first_frames(vtest, tmp_path):
    out = tmp_path / 'tracks.txt'
    assert main(['track-video', str(vtest), '--out', str(out), '--frames', '20']) == 0
    _check_mot_file(out, 20)


@pytest.mark.skipif(_has_hog(), reason='this OpenCV build has the HOG detector')
def test_hog_without_hog_says_what_to_use(vtest, tmp_path, capsys):
    assert main(['track-video', str(vtest), '--out', str(tmp_path / 't.txt')]) == 2
    assert '--detector motion' in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec('ultralytics') is None,
                    reason='ultralytics is not installed (the optional rgb extra: make rgb)')
def test_yolo_detector_on_the_first_frames(vtest, tmp_path):
    out = tmp_path / 'tracks.txt'
    assert main(['track-video', str(vtest), '--out', str(out), '--detector', 'yolo',
                 '--frames', '10']) == 0
    rows = _check_mot_file(out, 10)
    assert len({r.track_id for r in rows}) >= 3


def test_missing_video_is_an_error(tmp_path, capsys):
    assert main(['track-video', str(tmp_path / 'none.avi'), '--out',
                 str(tmp_path / 't.txt'), '--detector', 'motion']) == 2
    assert 'no such file' in capsys.readouterr().err


# -- pure parts -------------------------------------------------------------------------

RED = hsv_signature(np.tile([[0, 200, 200]], (50, 1)))
BLUE = hsv_signature(np.tile([[115, 200, 200]], (50, 1)))


def test_signature_bins():
    assert len(RED) == SIGNATURE_LENGTH and np.linalg.norm(RED) == pytest.approx(1.0)
    assert float(np.dot(RED, BLUE)) == pytest.approx(0.0)
    grey = hsv_signature(np.array([[0, 0, 10], [0, 0, 250]]))
    assert grey[-4] == pytest.approx(grey[-1]) and grey[-4] > 0.0
    assert hsv_signature(np.zeros((0, 3))) == ()


def test_nested_and_duplicate_boxes_are_suppressed():
    person = BoxDetection(100, 100, 150, 200, 0.9)
    legs = BoxDetection(105, 150, 145, 200, 0.7)
    twin = BoxDetection(102, 98, 152, 199, 0.6)
    other = BoxDetection(300, 100, 350, 200, 0.8)
    assert non_max_suppression([legs, twin, person, other]) == [person, other]


def test_two_walkers_crossing_keep_their_ids_through_misses():
    linker = VideoLinker(10.0, video_tracker_config(100.0), WIDTH, HEIGHT)
    rng = np.random.default_rng(4)
    seen: dict[str, list[int]] = {'a': [], 'b': []}
    for frame in range(60):
        t_s = frame / 10.0
        # a walks right, b walks left, crossing at 3 s; about 8 % of detections missed.
        centres = {'a': 100 + 80 * t_s, 'b': 580 - 80 * t_s}
        looks = {'a': RED, 'b': BLUE}
        detections = [BoxDetection(*(np.array([c - 25, 200, c + 25, 300])
                                     + rng.normal(0, 3, 4)), 0.8, looks[n])
                      for n, c in centres.items() if rng.random() > 0.08]
        rows = linker.update(frame, detections)
        assert all(r.frame == frame + 1 for r in rows)
        for n, c in centres.items():
            near = [r for r in rows if abs(r.x + r.w / 2 - c) < 20]
            if frame >= 5 and len(near) == 1:
                seen[n].append(near[0].track_id)
    assert len(set(seen['a'])) == 1 and len(set(seen['b'])) == 1
    assert seen['a'][0] != seen['b'][0]
    assert len(seen['a']) > 40 and len(seen['b']) > 40


def _leave_and_enter(linker: VideoLinker) -> dict[str, set[int]]:
    """Walk a out at the right edge (frame 20) and b in there 1.5 s later, in one colour."""
    ids: dict[str, set[int]] = {'a': set(), 'b': set()}
    for frame in range(50):
        detections = []
        if frame <= 20 or frame >= 35:
            c = WIDTH - 20 - 8 * abs(20 - frame if frame <= 20 else frame - 35)
            detections.append(BoxDetection(c - 25, 200, min(c + 25, WIDTH), 300, 0.8, RED))
        for row in linker.update(frame, detections):
            ids['a' if frame <= 20 else 'b'].add(row.track_id)
    return ids


def test_a_person_entering_where_another_left_gets_a_new_id():
    # b comes within max_lost_s (2 s) of a leaving, but past exit_lost_s (0.5 s) at the
    # image edge: a new track.
    linker = VideoLinker(10.0, video_tracker_config(100.0), WIDTH, HEIGHT)
    ids = _leave_and_enter(linker)
    assert len(ids['a']) == 1 and len(ids['b']) == 1 and ids['a'] != ids['b']
    assert linker.tracker.counters['ended_exit'] == 1
    # Without the image size there are no edges: b takes over a's coasting track.
    ids = _leave_and_enter(VideoLinker(10.0, video_tracker_config(100.0)))
    assert ids['a'] == ids['b']


def test_linker_checks_its_inputs():
    with pytest.raises(ValueError, match='fps'):
        VideoLinker(0.0)
    with pytest.raises(ValueError, match='image_box'):
        VideoLinker(10.0, video_tracker_config(100.0, mode='image_point'))
    with pytest.raises(ValueError, match='person_height_px'):
        video_tracker_config(0.0)
    with pytest.raises(ValueError, match='positive size'):
        BoxDetection(10, 10, 10, 20)
