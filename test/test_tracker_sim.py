"""Tracker on detections made from a simulated store, scored with motmetrics.

tools/bench_tracker.py turns a simulated scenario into detections and scores the tracks
against the simulated positions. The tool runs as a script (as an operator would), so
this also checks that it works. The floors below are well under the figures it reports
(docs/people.md) but fail if tracking breaks: a tracker that swapped identities at every
meeting or lost hidden people would fall far below them.
"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope='module')
def report(repo, tmp_path_factory):
    out = tmp_path_factory.mktemp('bench') / 'tracker.json'
    result = subprocess.run(
        [sys.executable, str(repo / 'tools' / 'bench_tracker.py'), '--duration', '60',
         '--skip-timing', '--json', str(out)],
        cwd=repo, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=str(repo)))
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(out.read_text())


def test_tracking_a_simulated_busy_store_scores_well(report):
    accuracy = report['accuracy']
    ours = accuracy['go_store']
    assert accuracy['people'] >= 8 and accuracy['frames'] == 900
    assert ours['mota'] >= 0.75, ours
    assert ours['idf1'] >= 0.65, ours
    # Fewer tracks than twice the people: re-identification and long coasting keep ids.
    assert ours['tracks_made'] <= 2 * accuracy['people'], ours
    assert ours['motp_m'] <= 0.15, ours


def test_the_simulated_store_exercises_tangles_and_exits(report):
    counters = report['accuracy']['go_store_counters']
    assert counters['tangled_tracks'] > 0 and counters['shared_detections'] > 0
    assert counters.get('reidentified_confirmed', 0) + counters.get('reidentified_guess', 0) > 0
    assert counters['ended_exit'] > 0


@pytest.mark.xfail(strict=True, reason='since shoppers walk in through the door and wait '
                   'together at the scanner, most tracks are born outside the entry zone '
                   '(a party there is one detection): births in the zone are below half '
                   'the people')
def test_most_tracks_are_born_where_people_enter(report):
    counters = report['accuracy']['go_store_counters']
    assert counters['born_in_zone'] >= report['accuracy']['people'] // 2
