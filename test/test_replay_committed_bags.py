"""The committed regression bags (bags/<name>): readable, consistent, and they pass.

Replaying one through the real node graph with its min-metrics must exit 0.
"""

import json
import os
import subprocess
import sys

import pytest

from go_store_nodes.bagio.evaluate import load_min_metrics
from go_store_nodes.bagio.reader import summarize
from go_store_nodes.core.evaluation import evaluate, parse_truth, Predictions
from go_store_nodes.core.store import load_store_description

BAGS = ('smoke', 'easy')


def _bag(repo, name):
    folder = repo / 'bags' / name
    if not (folder / 'bag' / 'metadata.yaml').is_file():
        pytest.skip(f'bags/{name}/bag not generated (run bags/{name}/generate.sh)')
    return folder


@pytest.mark.parametrize('name', BAGS)
def test_committed_bag_is_complete_and_consistent(repo, store_path, name):
    folder = _bag(repo, name)
    assert os.access(folder / 'generate.sh', os.X_OK)
    summary = summarize(folder / 'bag')
    description = load_store_description(store_path)
    for camera in description.cameras:
        topic = f'/cameras/{camera.camera_id}/depth/image_rect_raw'
        assert summary[topic].msgtype == 'sensor_msgs/msg/Image' and summary[topic].count
    for shelf in description.shelves:
        assert summary[f'/shelves/{shelf.shelf_id}/weights'].rate_hz() == pytest.approx(
            5.0, rel=0.01)
    assert summary['/tf_static'].count == 1
    truth = parse_truth(json.loads((folder / 'truth.json').read_text()))
    assert truth.scenario == name and truth.check_in_count >= 1
    assert summary['/gates/gate_entry/check_in'].count == truth.check_in_count
    size = sum(p.stat().st_size for p in (folder / 'bag').iterdir())
    assert size < 10e6, f'bags/{name} is {size / 1e6:.1f} MB'
    # Every metric the min-metrics file names exists in a report.
    names = {m.name for m in evaluate(truth, Predictions(topic_counts={})).metrics}
    assert {b.name for b in load_min_metrics(folder / 'min_metrics.yaml')} <= names


@pytest.mark.slow
def test_smoke_bag_replays_within_its_min_metrics(repo, tmp_path):
    folder = _bag(repo, 'smoke')
    replayed = subprocess.run(
        [sys.executable, '-m', 'go_store_nodes.cli', 'replay', str(folder / 'bag'), '--out',
         str(tmp_path / 'out'), '--as-fast-as-possible', '--quiet'], cwd=repo,
        capture_output=True, text=True, timeout=300)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    result = subprocess.run(
        [sys.executable, '-m', 'go_store_nodes.cli', 'eval', '--truth',
         str(folder / 'truth.json'), '--bag', str(tmp_path / 'out' / 'bag'), '--min-metrics',
         str(folder / 'min_metrics.yaml')], cwd=repo, capture_output=True, text=True,
        timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'min-metrics pass' in result.stdout
