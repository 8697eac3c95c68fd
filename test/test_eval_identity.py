"""Roles, tangled episodes and the peer tracker of the evaluation, on hand-built data."""

import ast
import pathlib

import pytest

from go_store_nodes.core.evaluation import evaluate, EvaluationConfig, parse_truth, Predictions
from go_store_nodes.core.evaluation.data import (
    PredictedDetectionFrame,
    PredictedTrackFrame,
    TruthFrame,
)
from go_store_nodes.core.evaluation.identity import (
    role_metrics,
    tangle_metrics,
    tangled_episodes,
)
from go_store_nodes.core.evaluation.peer import (
    load_norfair,
    PeerTrackerConfig,
    stamp_ordered,
    track_detections,
)
from go_store_nodes.core.evaluation.tracking import load_motmetrics

S = 1_000_000_000
T0 = 1_700_000_000 * S
PERIOD = S // 10
REPO = pathlib.Path(__file__).resolve().parents[1]
needs_norfair = pytest.mark.skipif(load_norfair() is None, reason='norfair not installed')
needs_motmetrics = pytest.mark.skipif(load_motmetrics() is None,
                                      reason='motmetrics not installed')


def _truth(frames, people=((1, 'shopper'), (2, 'shopper'))):
    return parse_truth({
        'format': 1, 'scenario': 'identity', 'seed': 1, 'start_ns': T0,
        'end_ns': T0 + 60 * S, 'frame_period_ns': PERIOD,
        'people': [{'person_id': pid, 'role': role,
                    'account_id': f'acct_{pid}' if role == 'shopper' else None,
                    'party_id': pid, 'enter_ns': T0, 'exit_ns': None}
                   for pid, role in people],
        'frames': [{'stamp_ns': f.stamp_ns, 'people': [
            {'person_id': p, 'x_m': x, 'y_m': y}
            for p, x, y in f.positions]} for f in frames],
        'events': [], 'check_ins': [], 'touches': [], 'receipts': []})


def _crossing(frames=60):
    """Two people walking towards each other along y = 1 and y = 1.2, crossing at x = 3."""
    result = []
    for k in range(frames):
        x = 0.1 * k
        result.append(TruthFrame(T0 + k * PERIOD, ((1, x, 1.0), (2, 6.0 - x, 1.2))))
    return result


def _tracks(frames, ids_before, ids_after, switch_k, roles=None):
    """Track frames on the truth positions; track ids change at frame ``switch_k``."""
    result = []
    for k, frame in enumerate(frames):
        ids = ids_before if k < switch_k else ids_after
        tracks = tuple((ids[i], x, y) for i, (_, x, y) in enumerate(frame.positions))
        result.append(PredictedTrackFrame(frame.stamp_ns, tracks,
                                          tuple(roles or ()) if roles else ()))
    return result


def _values(metrics):
    return {m.name: m.value for m in metrics}


def test_role_classification_right_and_wrong():
    frames = [TruthFrame(T0 + k * PERIOD, ((1, 1.0, 1.0), (2, 4.0, 1.0), (3, 8.0, 1.0)))
              for k in range(20)]
    truth = _truth(frames, people=((1, 'shopper'), (2, 'associate'), (3, 'shopper')))
    config = EvaluationConfig()
    right = _tracks(frames, (11, 12, 13), (11, 12, 13), 0,
                    roles=('shopper', 'associate', 'shopper'))
    values = _values(role_metrics(truth, right, config))
    assert values == {'associate_classification_accuracy': 1.0,
                      'associate_classification_associates': 1.0,
                      'associate_classification_shoppers': 1.0}
    # The associate's track called a shopper, and one shopper's track unknown: 1 of 3.
    wrong = _tracks(frames, (11, 12, 13), (11, 12, 13), 0,
                    roles=('shopper', 'shopper', 'unknown'))
    metrics = role_metrics(truth, wrong, config)
    values = _values(metrics)
    assert values['associate_classification_accuracy'] == pytest.approx(1 / 3)
    assert values['associate_classification_associates'] == 0.0
    assert values['associate_classification_shoppers'] == 0.5
    detail = metrics[0].detail
    assert detail['matched'] == 3 and detail['right'] == 1
    assert {w['person'] for w in detail['wrong']} == {2, 3}


def test_role_of_majority_frames_and_unmatched_people():
    frames = [TruthFrame(T0 + k * PERIOD, ((1, 1.0, 1.0), (2, 4.0, 1.0))) for k in range(10)]
    truth = _truth(frames, people=((1, 'associate'), (2, 'shopper')))
    # Person 1's track is an associate in 7 of 10 frames; person 2 is never tracked.
    tracks = [PredictedTrackFrame(f.stamp_ns, ((21, 1.0, 1.0),),
                                  ('associate' if k >= 3 else 'unknown',))
              for k, f in enumerate(frames)]
    metrics = role_metrics(truth, tracks, EvaluationConfig())
    assert _values(metrics)['associate_classification_accuracy'] == 1.0
    assert metrics[0].detail['shopper']['unmatched'] == 1
    assert metrics[2].value is None and 'no shopper matched' in metrics[2].missing
    # Tracks without roles: not scored.
    plain = [PredictedTrackFrame(f.stamp_ns, f.tracks) for f in tracks]
    assert role_metrics(truth, plain, EvaluationConfig())[0].missing == 'tracks carry no role'


def test_tangled_episode_definition():
    config = EvaluationConfig()
    # Crossing: |dx| < sqrt(0.6^2 - 0.2^2) = 0.566 m from x = 2.717 to 3.283, i.e. frames
    # 28..32 (x steps 0.1 m per person, so dx steps 0.2 m): 5 frames = 0.5 s.
    (episode,) = tangled_episodes(_crossing(), PERIOD, config)
    assert (episode.person_a, episode.person_b) == (1, 2)
    assert (episode.start_ns - T0) // PERIOD == 28 and (episode.end_ns - T0) // PERIOD == 32
    # Shorter than tangle_min_s: no episode.
    assert tangled_episodes(_crossing(), PERIOD, EvaluationConfig(tangle_min_s=0.6)) == []
    # Two touches 0.5 s apart are one episode; 1.5 s apart, two.
    def touches(gap_frames):
        frames = []
        for k in range(40):
            near = k in (10, 11, 12, 13, 14) or k in range(15 + gap_frames, 20 + gap_frames)
            frames.append(TruthFrame(T0 + k * PERIOD,
                                     ((1, 1.0, 1.0), (2, 1.3 if near else 3.0, 1.0))))
        return frames
    assert len(tangled_episodes(touches(5), PERIOD, config)) == 1
    assert len(tangled_episodes(touches(15), PERIOD, config)) == 2


@pytest.mark.parametrize('after, outcome, share', [
    ((11, 12), 'both_right', 1.0),
    ((12, 11), 'swapped', 0.0),
    ((11, 15), 'changed', 0.0),
])
def test_tangled_episodes_both_right(after, outcome, share):
    frames = _crossing()
    truth = _truth(frames)
    tracks = _tracks(frames, (11, 12), after, switch_k=30)
    metrics = tangle_metrics('', truth, tracks, EvaluationConfig())
    values = _values(metrics)
    assert values['tangled_episodes'] == 1.0
    assert values['tangled_episodes_both_right'] == share
    (listed,) = metrics[0].detail['list']
    assert listed['outcome'] == outcome and listed['tracks_before'] == [11, 12]


def test_tangled_episode_one_track_for_both_and_not_scored():
    frames = _crossing()
    truth = _truth(frames)
    # One track jumping between the two people before the episode: not both followed.
    shared = [PredictedTrackFrame(f.stamp_ns, ((11,) + f.positions[k % 2][1:],))
              if k < 28 else PredictedTrackFrame(f.stamp_ns, ((11, f.positions[0][1], 1.0),
                                                              (12, f.positions[1][1], 1.2)))
              for k, f in enumerate(frames)]
    metrics = tangle_metrics('', truth, shared, EvaluationConfig())
    assert metrics[0].detail['list'][0]['outcome'] == 'one_track_for_both_before'
    assert metrics[1].value == 0.0
    # The store ends right after the episode: nobody to follow after it, not scored.
    short = truth.__class__(**{**truth.__dict__, 'frames': tuple(frames[:33])})
    metrics = tangle_metrics('', short, _tracks(frames[:33], (11, 12), (11, 12), 0),
                             EvaluationConfig())
    assert metrics[0].value == 0.0 and metrics[0].detail['not_scored'] == 1
    assert metrics[1].value is None


def test_stamp_order_drops_repeated_stamps():
    frames = [PredictedDetectionFrame(T0 + 2 * PERIOD, ((1.0, 1.0),)),
              PredictedDetectionFrame(T0, ((0.0, 1.0),)),
              PredictedDetectionFrame(T0 + 2 * PERIOD, ((9.0, 9.0),))]
    ordered, dropped = stamp_ordered(frames)
    assert [f.stamp_ns for f in ordered] == [T0, T0 + 2 * PERIOD] and dropped == 1
    assert ordered[1].positions == ((1.0, 1.0),)


def test_peer_config_hit_counter_from_frame_period():
    config = PeerTrackerConfig(coast_s=2.0, initialization_delay_frames=2)
    assert config.hit_counter_max(0.2) == 10 and config.hit_counter_max(0.1) == 20
    assert config.hit_counter_max(5.0) == 3            # above the initialization delay
    with pytest.raises(ValueError):
        PeerTrackerConfig(distance_threshold_m=0.0)


@needs_norfair
def test_peer_tracks_two_people_crossing():
    """Two people crossing at speed keep their tracks; a threshold of 1 cm loses them."""
    frames = _crossing(80)
    detections = [PredictedDetectionFrame(f.stamp_ns, tuple((x, y) for _, x, y in f.positions))
                  for f in reversed(frames)]                      # any order in the bag
    run = track_detections(detections, PeerTrackerConfig(distance_threshold_m=0.5))
    assert run is not None and run.name.startswith('norfair')
    assert run.settings['hit_counter_max'] == 20 and run.settings['distance_function'] == \
        'euclidean'
    assert [f.stamp_ns for f in run.frames] == [f.stamp_ns for f in frames]
    # Initialization delay: nothing reported on the first frames, then two tracks.
    assert run.frames[0].tracks == ()
    ids_by_side = set()
    for frame, truth_frame in zip(run.frames[5:], frames[5:], strict=True):
        assert len(frame.tracks) == 2
        for person, x, y in truth_frame.positions:
            (nearest,) = [t for t in frame.tracks if abs(t[2] - y) < 0.1]
            assert abs(nearest[1] - x) < 0.15
            ids_by_side.add((person, nearest[0]))
    assert len(ids_by_side) == 2                       # each person one id throughout
    truth = _truth(frames)
    report = evaluate(truth, Predictions(topic_counts={'/people/detections': len(frames)},
                                         detection_frames=tuple(detections)))
    if load_motmetrics() is not None:
        assert report.get('peer_tracking_id_switches').value == 0.0
        assert report.get('peer_tracking_idf1').value > 0.9
        assert report.get('peer_tangled_episodes_both_right').value == 1.0
    assert report.get('peer_tracker').display() == run.name
    # A 1 cm threshold never matches a person walking 0.1 m per frame to their new track,
    # so no track gets through the initialization delay.
    tight = track_detections(detections, PeerTrackerConfig(distance_threshold_m=0.01))
    assert tight is not None and not any(f.tracks for f in tight.frames)


@needs_norfair
@needs_motmetrics
def test_report_prints_peer_beside_ours():
    frames = _crossing(80)
    truth = _truth(frames)
    detections = tuple(PredictedDetectionFrame(f.stamp_ns, tuple((x, y) for _, x, y in
                                                                 f.positions)) for f in frames)
    # Ours swaps the two identities at the crossing.
    ours = tuple(_tracks(frames, (11, 12), (12, 11), 30, roles=('shopper', 'shopper')))
    report = evaluate(truth, Predictions(
        topic_counts={'/people/detections': len(frames), '/people/tracks': len(frames)},
        detection_frames=detections, track_frames=ours))
    assert report.get('tangled_episodes_both_right').value == 0.0
    assert report.get('peer_tangled_episodes_both_right').value == 1.0
    assert report.get('tracking_id_switches').value == 2.0
    table = report.table()
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith('tracker comparison'))
    assert 'go_store' in header and 'norfair' in header
    row = next(line for line in lines if line.startswith('tracking_id_switches ')
               and len(line.split()) == 3)
    assert row.split()[1:] == ['2', '0']
    assert report.to_dict()['metrics']['peer_tracker']['text'] == \
        report.get('peer_tracker').text


def test_peer_missing_without_detections():
    report = evaluate(_truth(_crossing()), Predictions(topic_counts={}))
    metric = report.get('peer_tracking_idf1')
    assert metric.value is None and metric.missing == 'no /people/detections messages'
    assert 'tracker comparison' not in report.table()


def test_no_node_imports_the_peer_tracker():
    """Only core.evaluation may import norfair: it is evaluation code."""
    for path in (REPO / 'go_store_nodes').rglob('*.py'):
        if 'evaluation' in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ''] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split('.')[0] == 'norfair' for n in names), path
