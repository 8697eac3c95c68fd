"""Replay a small bag through the real node graph over DDS (use_sim_time, /clock).

`go-store replay` runs in its own process: the player publishes the bag and /clock,
the calibration node (the graph's running node) follows /clock, and the recorder
writes /calibration/status into the output bag; evaluation follows.
"""

import json
import os
import subprocess
import sys

import pytest
from test_bagio_fake_sim import fake_truth_path, START_NS, write_fake_bag

from go_store_nodes.bagio.reader import messages, summarize
from go_store_nodes.core.store import load_store_description

pytestmark = pytest.mark.slow
S = 1_000_000_000


@pytest.fixture(scope='module')
def fake_bag(tmp_path_factory, store_path):
    out = tmp_path_factory.mktemp('replay') / 'fake'
    write_fake_bag(load_store_description(store_path), out, duration_s=2.0)
    return out


def _replay(repo, bag, out, *args):
    result = subprocess.run(
        [sys.executable, '-m', 'go_store_nodes.cli', 'replay', str(bag), '--out', str(out),
         '--quiet', *args], cwd=repo, capture_output=True, text=True, timeout=180,
        env=dict(os.environ))
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads((out / 'report.json').read_text())


def _eval(repo, truth, bag, *args):
    return subprocess.run(
        [sys.executable, '-m', 'go_store_nodes.cli', 'eval', '--truth', str(truth), '--bag',
         str(bag), *args], cwd=repo, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize('speed', [['--as-fast-as-possible'], ['--rate', '4']])
def test_replay_drives_the_graph_clock_and_records_calibration_status(
        repo, fake_bag, tmp_path, speed, store_path):
    result, report = _replay(repo, fake_bag, tmp_path / 'out', *speed, '--tail', '0.5')
    assert report['published'] == sum(s.count for s in summarize(fake_bag).values())
    assert report['first_ns'] == START_NS and report['last_ns'] == START_NS + 2 * S
    assert report['real_time_factor'] > 0.0
    if speed[0] == '--rate':
        assert report['real_time_factor'] == pytest.approx(4.0, rel=0.25)
    # /clock drove every node on sim time: their clocks read the end of the bag + tail.
    end = START_NS + int(2.5 * S)
    assert report['end_clock_ns'] == end
    assert report['node_clocks_ns']['/calibration'] == end
    assert report['node_clocks_ns']['/go_store_recorder'] == end
    assert report['recorded']['/calibration/status'] == 1
    recorded = list(messages(tmp_path / 'out' / 'bag'))
    (status,) = [m for topic, _, m in recorded if topic == '/calibration/status']
    assert len(status.cameras) == len(load_store_description(store_path).cameras)
    assert all(START_NS <= stamp <= end for _, stamp, _ in recorded)
    assert 'evaluate: go-store eval' in result.stdout
    evaluated = _eval(repo, fake_truth_path(fake_bag), tmp_path / 'out' / 'bag', '--json',
                      str(tmp_path / 'out' / 'eval.json'))
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    evaluation = json.loads((tmp_path / 'out' / 'eval.json').read_text())['metrics']
    assert evaluation['messages./calibration/status']['value'] == 1
    assert evaluation['receipt_exact_match_rate']['missing'] == 'no /receipts messages'
    assert evaluation['real_time_factor']['value'] == pytest.approx(
        report['real_time_factor'], rel=1e-4)
    # The locator and tracker run: one detection array per frame set, one track array each.
    assert report['recorded']['/people/detections'] >= 1
    assert report['recorded']['/people/tracks'] == report['recorded']['/people/detections']
    assert 'tracking_mota' in evaluated.stdout
    # The replay ran on a DDS domain of its own, not the environment's (a live store graph).
    assert report['settle_timeouts'] == 0
    assert str(report['domain_id']) != os.environ.get('ROS_DOMAIN_ID', '0')


def test_replay_domain_is_the_one_asked_or_never_the_live_one(monkeypatch):
    from go_store_nodes.replay.run import DomainInUseError, replay_domain_id
    assert replay_domain_id(42) == 42
    with pytest.raises(ValueError):
        replay_domain_id(233)
    for live in ('0', '7', '55'):
        monkeypatch.setenv('ROS_DOMAIN_ID', live)
        assert 1 <= replay_domain_id(None) <= 100
        assert str(replay_domain_id(None)) != live
    # Domains with nodes in them are passed over when picking, refused when asked for.
    monkeypatch.setenv('ROS_DOMAIN_ID', '0')
    first = replay_domain_id(None)
    taken = {first: ['/go_store_player'], first % 100 + 1: ['/tracker']}
    picked = replay_domain_id(None, occupied=lambda d: taken.get(d, []))
    assert picked == (first + 1) % 100 + 1
    with pytest.raises(DomainInUseError, match='another replay or a live graph'):
        replay_domain_id(first, occupied=lambda d: taken.get(d, []))
    with pytest.raises(DomainInUseError, match='every DDS domain'):
        replay_domain_id(None, occupied=lambda d: ['/x'])


def test_a_domain_with_another_graph_in_it_is_seen_as_taken(monkeypatch):
    import rclpy

    from go_store_nodes.replay.run import nodes_in_domain, replay_domain_id
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    domain = 101 + os.getpid() % 100
    assert nodes_in_domain(domain) == []
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        other = rclpy.create_node('other_replay_player', context=context)
        assert nodes_in_domain(domain) == ['/other_replay_player']
        with pytest.raises(RuntimeError, match=f'domain {domain} already has nodes'):
            replay_domain_id(domain, occupied=nodes_in_domain)
        other.destroy_node()
    finally:
        context.try_shutdown()


def test_replay_refuses_an_existing_output_and_fails_min_metrics(repo, fake_bag, tmp_path):
    out = tmp_path / 'out'
    limits = tmp_path / 'min.yaml'
    limits.write_text('metrics:\n  messages./calibration/status: {min: 1}\n'
                      '  receipt_exact_match_rate: {min: 1.0}\n')
    _replay(repo, fake_bag, out, '--as-fast-as-possible', '--tail', '0')
    result = _eval(repo, fake_truth_path(fake_bag), out / 'bag', '--min-metrics', str(limits))
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'receipt_exact_match_rate: missing (no /receipts messages)' in result.stderr
    again = subprocess.run(
        [sys.executable, '-m', 'go_store_nodes.cli', 'replay', str(fake_bag), '--out',
         str(out), '--quiet'], cwd=repo, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and '--overwrite' in again.stderr
