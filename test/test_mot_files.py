"""MOTChallenge files: reading, writing, and scores equal to motmetrics' and TrackEval's.

The ground truth and tracker output are those bundled in the motmetrics wheel
(``motmetrics/data/TUD-Campus`` and ``TUD-Stadtmitte``: ``gt.txt``, ``test.txt``).
"""

import math
import pathlib

import numpy as np
import pytest

from go_store_nodes.core.evaluation.hota import box_iou, hota, HotaFrame
from go_store_nodes.core.evaluation.tracking import load_motmetrics
from go_store_nodes.core.evaluation.video import score_mot
from go_store_nodes.core.tracker import Track
from go_store_nodes.core.video import (
    format_mot,
    MotFormatError,
    MotRow,
    parse_mot,
    rows_by_frame,
    tracks_to_rows,
)

SEQUENCES = ('TUD-Campus', 'TUD-Stadtmitte')
# HOTA, DetA, AssA of test.txt against gt.txt by TrackEval 1.3.0 (the authors' reference
# code), installed in a venv of its own: MotChallenge2DBox with BENCHMARK='MOT15',
# SEQ_INFO {'TUD-Campus': 71, 'TUD-Stadtmitte': 179}, metrics HOTA, CLEAR and Identity.
# Its MOTA and IDF1 on these files agree with motmetrics' to 1e-10.
TRACKEVAL = {
    'TUD-Campus': {'hota': 0.3913974378, 'deta': 0.4180470301, 'assa': 0.3691206812,
                   'loca': 0.7700522270, 'mota': 0.5264623955, 'idf1': 0.5576592083},
    'TUD-Stadtmitte': {'hota': 0.3978490170, 'deta': 0.3922675724, 'assa': 0.4088407518,
                       'loca': 0.7375211772, 'mota': 0.5640138408, 'idf1': 0.6446194226},
}


@pytest.fixture(scope='module')
def motmetrics():
    mm = load_motmetrics()
    if mm is None:
        pytest.skip('motmetrics not installed (pip install motmetrics==1.4.0 pandas)')
    return mm


def _data(mm, sequence: str) -> pathlib.Path:
    return pathlib.Path(mm.__file__).parent / 'data' / sequence


def test_reading_the_bundled_files(motmetrics):
    gt = parse_mot((_data(motmetrics, 'TUD-Campus') / 'gt.txt').read_text())
    test = parse_mot((_data(motmetrics, 'TUD-Campus') / 'test.txt').read_text())
    assert len(gt) == 359 and len(test) == 222
    assert gt[0] == MotRow(1, 1, 399.0, 182.0, 121.0, 229.0, 1.0, (-1.0, -1.0, -1.0))
    assert test[0] == MotRow(1, 3, 113.84, 274.5, 57.307, 130.05, -1.0, (-1.0, -1.0, -1.0))
    assert test[0].corners == pytest.approx((113.84, 274.5, 171.147, 404.55))
    assert max(r.frame for r in gt) == 71
    assert len(rows_by_frame(gt)[1]) == len([r for r in gt if r.frame == 1])


@pytest.mark.parametrize('sequence', SEQUENCES)
@pytest.mark.parametrize('name', ('gt.txt', 'test.txt'))
def test_write_read_round_trip(motmetrics, sequence, name, tmp_path):
    rows = parse_mot((_data(motmetrics, sequence) / name).read_text())
    path = tmp_path / name
    path.write_text(format_mot(rows))
    again = parse_mot(path.read_text())
    assert again == sorted(rows, key=lambda r: (r.frame, r.track_id))
    assert format_mot(again) == path.read_text()


def test_written_lines_have_the_motchallenge_layout():
    text = format_mot([MotRow(2, 7, 10.5, 20.0, 30.25, 60.0, 0.9),
                       MotRow(1, 3, 0.0, 1.0, 2.0, 4.0)])
    assert text == '1,3,0,1,2,4,1,-1,-1,-1\n2,7,10.5,20,30.25,60,0.9,-1,-1,-1\n'
    assert format_mot([]) == ''


@pytest.mark.parametrize('text, message', [
    ('1,2,3,4,5', 'at least 6 values'),
    ('1,2,a,4,5,6', 'could not convert'),
    ('1.5,2,3,4,5,6', 'frame and id must be integers'),
    ('0,2,3,4,5,6', '1-based'),
    ('1,2,3,4,-5,6', '>= 0'),
])
def test_malformed_lines_name_the_line(text, message):
    with pytest.raises(MotFormatError, match=message) as error:
        parse_mot('1,1,1,1,1,1\n\n' + text, 'f.txt')
    assert 'f.txt:3' in str(error.value)


def _track(track_id, cx, cy, w, h, unseen_s=0.0, confidence=0.95):
    return Track(track_id, np.array([cx, cy, w, h]), np.zeros(4), np.eye(4), math.nan,
                 confidence, False, (), 'shopper', 0, 0, unseen_s, True)


def test_tracks_become_rows_clipped_and_only_when_seen():
    tracks = [_track(1, 100.0, 200.0, 40.0, 80.0), _track(2, 10.0, 50.0, 40.0, 80.0),
              _track(3, 300.0, 300.0, 40.0, 80.0, unseen_s=0.1),
              _track(4, -50.0, 50.0, 40.0, 80.0)]
    rows = tracks_to_rows(5, tracks, width=640, height=480)
    assert [r.track_id for r in rows] == [1, 2]  # 3 is coasting, 4 lies off the image
    assert rows[0] == MotRow(5, 1, 80.0, 160.0, 40.0, 80.0, 0.95)
    assert rows[1].corners == (0.0, 10.0, 30.0, 90.0)
    assert [r.track_id for r in tracks_to_rows(5, tracks, max_unseen_s=0.5)] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match='image_box'):
        tracks_to_rows(1, [Track(1, np.zeros(2), np.zeros(2), np.eye(2), math.nan, 1.0,
                                 False, (), 'shopper', 0, 0, 0.0, True)])


@pytest.mark.parametrize('sequence', SEQUENCES)
def test_mota_and_idf1_equal_motmetrics_own(motmetrics, sequence):
    folder = _data(motmetrics, sequence)
    gt = motmetrics.io.loadtxt(str(folder / 'gt.txt'))
    test = motmetrics.io.loadtxt(str(folder / 'test.txt'))
    accumulator = motmetrics.utils.compare_to_groundtruth(gt, test, 'iou', distth=0.5)
    own = motmetrics.metrics.create().compute(
        accumulator, metrics=['mota', 'idf1', 'num_switches', 'num_false_positives',
                              'num_misses'], name='own').loc['own']
    scores = score_mot(parse_mot((folder / 'gt.txt').read_text()),
                       parse_mot((folder / 'test.txt').read_text()))
    assert scores.mota == pytest.approx(float(own['mota']), abs=1e-12)
    assert scores.idf1 == pytest.approx(float(own['idf1']), abs=1e-12)
    assert scores.id_switches == int(own['num_switches'])
    assert scores.false_positives == int(own['num_false_positives'])
    assert scores.misses == int(own['num_misses'])
    assert scores.mota == pytest.approx(TRACKEVAL[sequence]['mota'], abs=1e-9)
    assert scores.idf1 == pytest.approx(TRACKEVAL[sequence]['idf1'], abs=1e-9)


@pytest.mark.parametrize('sequence', SEQUENCES)
def test_hota_equals_trackeval_reference(motmetrics, sequence):
    folder = _data(motmetrics, sequence)
    scores = score_mot(parse_mot((folder / 'gt.txt').read_text()),
                       parse_mot((folder / 'test.txt').read_text()))
    for key in ('hota', 'deta', 'assa', 'loca'):
        assert getattr(scores, key) == pytest.approx(TRACKEVAL[sequence][key], abs=1e-9), key


def test_perfect_tracks_score_one(motmetrics):
    gt = parse_mot((_data(motmetrics, 'TUD-Campus') / 'gt.txt').read_text())
    scores = score_mot(gt, [MotRow(r.frame, r.track_id + 100, r.x, r.y, r.w, r.h)
                            for r in gt])
    assert (scores.mota, scores.idf1, scores.hota, scores.deta, scores.assa) == \
        pytest.approx((1.0, 1.0, 1.0, 1.0, 1.0))


def _frames(pairs):
    """HOTA frames of one truth id 1 and given track ids, all at similarity 1."""
    return [HotaFrame([1], [t], np.ones((1, 1))) for t in pairs]


def test_hota_of_an_identity_split_in_half():
    # Detection is perfect (DetA 1); the truth's 2k frames go to two tracks of k each:
    # each true positive's pair has |TPA| = k, |FNA| = k, |FPA| = 0: AssA = 1/2.
    result = hota(_frames([7] * 10 + [8] * 10))
    assert result.deta == pytest.approx(1.0)
    assert result.assa == pytest.approx(0.5)
    assert result.hota == pytest.approx(math.sqrt(0.5))


def test_hota_of_misses_and_localisation():
    # Half the frames missed: DetA = 10 / 20 at every alpha, AssA = 10 / 20 as well
    # (the track's pair has |TPA| 10, |FNA| 10). A similarity of 0.5 counts only for the
    # alphas up to 0.5: 10 of 19.
    result = hota(_frames([7] * 10) + [HotaFrame([1], [], np.zeros((1, 0)))] * 10)
    assert (result.deta, result.assa) == pytest.approx((0.5, 0.5))
    half = hota([HotaFrame([1], [7], np.full((1, 1), 0.5))] * 4)
    assert half.per_alpha[:10] == pytest.approx((1.0,) * 10)
    assert half.per_alpha[10:] == pytest.approx((0.0,) * 9)
    assert half.hota == pytest.approx(10 / 19)
    # LocA is 1 at an alpha with no true positive (TrackEval's convention).
    assert half.loca == pytest.approx((10 * 0.5 + 9 * 1.0) / 19)


def test_hota_rejects_bad_frames():
    with pytest.raises(ValueError, match='in \\[0, 1\\]'):
        hota([HotaFrame([1], [2], np.full((1, 1), 1.5))])
    with pytest.raises(ValueError, match='twice'):
        hota([HotaFrame([1, 1], [2], np.ones((2, 1)))])
    assert hota([]).hota == 0.0


def test_box_iou():
    iou = box_iou(np.array([[0, 0, 10, 10], [100, 100, 5, 5]]),
                  np.array([[5, 0, 10, 10], [0, 0, 10, 10]]))
    assert iou == pytest.approx(np.array([[50 / 150, 1.0], [0.0, 0.0]]))
