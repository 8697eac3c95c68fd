"""Gate node over real DDS: the node in its own process, a plain rclpy probe here.

The probe waits for matching and for the answers; no fixed sleeps. The ledger database is
a SQLite file in tmp_path, or a fresh PostgreSQL schema when GO_STORE_TEST_POSTGRES_URL is
set. ``StoreProcesses`` and ``Probe`` are shared with test_cart_ledger_dds.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray
from go_store.msg import CartEvent, CheckIn, CheckInResult, Receipt, Track, TrackArray, Visit
from go_store.srv import GetCart, ListReviews, ResolveReview
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sqlalchemy.engine import make_url
from std_msgs.msg import Header
from test_ledger_backends import BACKENDS, open_backend

from go_store_nodes.core.ledger import TokenIssuer
from go_store_nodes.core.ledger.tokens import generate_private_key, save_public_key
from go_store_nodes.nodes.cart_ledger import DURABLE_QOS, EVENTS_QOS
from go_store_nodes.nodes.gate import CHECK_IN_QOS, RELIABLE_QOS, VISITS_QOS
from go_store_nodes.ros.ledger_conversions import ns_to_stamp, stamp_to_ns

pytestmark = pytest.mark.slow
TIMEOUT_S = 30.0
ENTRY = (0.6, 0.4)
EXIT = (9.4, 0.4)
AISLE = (5.0, 3.0)


class StoreProcesses:
    """The gate and/or cart_ledger nodes, each in its own process, on one test database."""

    def __init__(self, repo, tmp_path, database_url, nodes, **overrides) -> None:
        self.key = generate_private_key()
        key_path = tmp_path / 'store_app_public.pem'
        if not key_path.exists():
            save_public_key(self.key.public_key(), key_path)
        else:
            raise AssertionError('one StoreProcesses per test')
        parameters = {
            'database_url': database_url, 'token_public_key_file': str(key_path),
            'store_description': str(repo / 'config' / 'store.yaml'),
            'group_window_s': 2.0, 'grace_period_s': 0.3, 'receipt_check_period_s': 0.1,
            'receipt_holdoff_s': 0.0, 'diagnostics_period_s': 0.2, 'use_sim_time': False}
        parameters.update(overrides)
        args = ['--params-file', str(repo / 'config' / 'go_store.yaml')]
        for name, value in parameters.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ['-p', f'{name}:={text}']
        self._repo, self._args = repo, args
        self.logs = {name: tmp_path / f'{name}.log' for name in nodes}
        self.processes = {}
        for name in nodes:
            self.start(name)

    def start(self, name: str) -> None:
        """Start one node process (again, after ``kill``), its output appended to its log."""
        with open(self.logs[name], 'a') as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, '-m', f'go_store_nodes.nodes.{name}', '--ros-args',
                 *self._args],
                cwd=self._repo, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))

    def kill(self, name: str) -> int:
        """SIGKILL one node process; return its exit status."""
        process = self.processes.pop(name)
        process.kill()
        return process.wait(timeout=15)

    def output(self, name: str) -> str:
        return self.logs[name].read_text()

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            assert process.poll() is None, f'{name} died:\n{self.output(name)}'

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for name, process in self.processes.items():
            try:
                code = process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                # Not stopped: its threads' stacks go to its log (run_single_node), then kill.
                process.send_signal(signal.SIGUSR1)
                time.sleep(1.0)
                process.kill()
                code = process.wait()
            assert code in (0, -signal.SIGINT), f'{name} exited {code}:\n{self.output(name)}'


class Probe:
    """A plain rclpy node in its own context: publishes inputs, records outputs."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('test_probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        node = self.node
        self.results: list[CheckInResult] = []
        self.visits: list[Visit] = []
        self.receipts: list[Receipt] = []
        self.diagnostics: dict[str, dict[str, str]] = {}
        node.create_subscription(CheckInResult, 'gates/check_in_result', self.results.append,
                                 RELIABLE_QOS)
        node.create_subscription(Visit, 'visits', self.visits.append, VISITS_QOS)
        node.create_subscription(Receipt, 'receipts', self.receipts.append, DURABLE_QOS)
        node.create_subscription(DiagnosticArray, 'diagnostics', self._on_diagnostics, 50)
        self.check_in_pub = node.create_publisher(CheckIn, 'gates/gate_entry/check_in',
                                                  CHECK_IN_QOS)
        self.tracks_pub = node.create_publisher(TrackArray, 'people/tracks', RELIABLE_QOS)
        self.events_pub = node.create_publisher(CartEvent, 'cart/events', EVENTS_QOS)
        self.get_cart_client = node.create_client(GetCart, 'ledger/get_cart')
        self.list_reviews_client = node.create_client(ListReviews, 'ledger/list_reviews')
        self.resolve_client = node.create_client(ResolveReview, 'ledger/resolve_review')

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def spin_until(self, condition: Callable[[], object], what: str,
                   processes: StoreProcesses | None = None):
        deadline = time.monotonic() + TIMEOUT_S
        while not (value := condition()):
            if processes is not None:
                processes.check_alive()
            assert time.monotonic() < deadline, f'timed out waiting for {what}'
            self.executor.spin_once(timeout_sec=0.05)
        return value

    def wait_for_gate(self, processes: StoreProcesses) -> None:
        self.spin_until(lambda: self.check_in_pub.get_subscription_count() > 0
                        and self.tracks_pub.get_subscription_count() > 0,
                        'the gate subscriptions to match', processes)
        self.spin_until(lambda: self.node.count_publishers('visits') > 0
                        and self.node.count_publishers('gates/check_in_result') > 0,
                        'the gate publishers', processes)

    def wait_for_cart_ledger(self, processes: StoreProcesses) -> None:
        self.spin_until(lambda: self.events_pub.get_subscription_count() > 0
                        and self.node.count_publishers('receipts') > 0,
                        'the cart ledger to match', processes)
        for client in (self.get_cart_client, self.list_reviews_client, self.resolve_client):
            self.spin_until(client.service_is_ready, f'service {client.srv_name}', processes)

    def call(self, client, request):
        future = client.call_async(request)
        self.spin_until(future.done, f'the answer of {client.srv_name}')
        return future.result()

    def check_in(self, token: str, stamp_ns: int, gate_id: str = 'gate_entry') -> CheckInResult:
        count = len(self.results)
        self.check_in_pub.publish(CheckIn(
            header=Header(stamp=ns_to_stamp(stamp_ns), frame_id='gate_entry'),
            gate_id=gate_id, token=token))
        self.spin_until(lambda: len(self.results) > count, 'the check-in result')
        return self.results[count]

    def tracks(self, stamp_ns: int, **positions: tuple[float, float]) -> None:
        """Publish one snapshot: ``t<id>=(x, y)``, ``a<id>`` for an associate."""
        msg = TrackArray(header=Header(stamp=ns_to_stamp(stamp_ns), frame_id='map'))
        for name, (x_m, y_m) in positions.items():
            track = Track(track_id=int(name[1:]), role=Track.ROLE_ASSOCIATE
                          if name[0] == 'a' else Track.ROLE_SHOPPER)
            track.header = msg.header
            track.position.x, track.position.y = x_m, y_m
            msg.tracks.append(track)
        self.tracks_pub.publish(msg)

    def visit_with(self, visit_id: str, status: int, tracks: int = 0) -> list[Visit]:
        return [v for v in self.visits if v.visit_id == visit_id and v.status == status
                and len(v.track_ids) >= tracks]

    def counter(self, node_name: str, key: str) -> int:
        return int(self.diagnostics.get(node_name, {}).get(key, '0'))


def database_url(backend) -> str:
    """Return a URL the node processes can use for the test database."""
    if backend.name == 'sqlite':
        return backend.url
    url = make_url(backend.url).update_query_dict(
        {'options': f'-csearch_path={backend._schema}'})
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path):
    with open_backend(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
def probe():
    opened = Probe()
    yield opened
    opened.close()


@pytest.fixture
def gate_only(repo, tmp_path, backend):
    processes = StoreProcesses(repo, tmp_path, database_url(backend), ('gate',))
    yield processes
    processes.stop()


def test_forged_valid_replayed_and_misrouted_check_ins(gate_only, probe):
    probe.wait_for_gate(gate_only)
    issuer = TokenIssuer(gate_only.key)
    now = time.time_ns()
    forged = TokenIssuer(generate_private_key()).issue('acct-1', now)
    result = probe.check_in(forged, now)
    assert (result.accepted, result.reason, result.visit_id) == (
        False, CheckInResult.REASON_BAD_SIGNATURE, '')
    assert result.header.stamp == ns_to_stamp(now) and result.gate_id == 'gate_entry'

    token = issuer.issue('acct-1', now)
    misrouted = probe.check_in(token, now + 1, gate_id='gate_exit')
    assert (misrouted.accepted, misrouted.reason) == (False, CheckInResult.REASON_MALFORMED)
    assert 'gate_exit' in misrouted.detail

    valid = probe.check_in(token, now + 2)
    assert valid.accepted and valid.reason == '' and valid.visit_id
    assert valid.header.stamp == ns_to_stamp(now + 2)
    probe.spin_until(lambda: probe.visit_with(valid.visit_id, Visit.STARTED), 'Visit STARTED')

    replayed = probe.check_in(token, now + 3)
    assert (replayed.accepted, replayed.reason, replayed.visit_id) == (
        False, CheckInResult.REASON_REPLAYED, '')
    # Visits are delivered in order: once the next visit arrives, none came in between.
    other = probe.check_in(issuer.issue('acct-2', now), now + 4)
    assert other.accepted
    probe.spin_until(lambda: probe.visit_with(other.visit_id, Visit.STARTED), 'Visit 2')
    assert [v.visit_id for v in probe.visits] == [valid.visit_id, other.visit_id]
    assert probe.visits[0].account_id == 'acct-1' and probe.visits[0].gate_id == 'gate_entry'
    probe.spin_until(lambda: probe.counter('/gate', 'refused_bad_signature') == 1
                     and probe.counter('/gate', 'refused_replayed') == 1,
                     'the refusals in diagnostics', gate_only)
    gate_only.check_alive()


def test_a_group_scan_links_three_shoppers_but_not_the_associate(gate_only, probe):
    probe.wait_for_gate(gate_only)
    now = time.time_ns()
    probe.tracks(now, t1=ENTRY, t2=ENTRY, t3=ENTRY, a4=ENTRY, t5=AISLE)
    result = probe.check_in(TokenIssuer(gate_only.key).issue('acct-1', now), now)
    assert result.accepted
    # The tracks may reach the gate before or after the scan: within the window both work.
    probe.tracks(now + 100_000_000, t1=ENTRY, t2=ENTRY, t3=ENTRY, a4=ENTRY, t5=AISLE)
    started = probe.spin_until(lambda: probe.visit_with(result.visit_id, Visit.STARTED, 3),
                               'the visit with three tracks', gate_only)
    assert sorted(started[-1].track_ids) == [1, 2, 3]
    probe.tracks(now + 2_000_000_000, t1=EXIT, t2=EXIT, t3=EXIT, a4=EXIT, t5=AISLE)
    probe.tracks(now + 2_100_000_000, t5=AISLE)
    ended = probe.spin_until(lambda: probe.visit_with(result.visit_id, Visit.ENDED),
                             'Visit ENDED', gate_only)
    # Stamped with the gate's clock when the snapshot came in, not the tracker's stamp.
    assert now < stamp_to_ns(ended[0].header.stamp) <= time.time_ns()
    assert sorted(ended[0].track_ids) == [1, 2, 3] and ended[0].gate_id == 'gate_exit'


def test_the_gate_refuses_to_start_without_its_key(repo, tmp_path):
    process = subprocess.run(
        [sys.executable, '-m', 'go_store_nodes.nodes.gate', '--ros-args', '--params-file',
         str(repo / 'config' / 'go_store.yaml'), '-p',
         f'token_public_key_file:={tmp_path / "missing.pem"}', '-p',
         f'database_url:=sqlite:///{tmp_path / "ledger.sqlite"}'],
        cwd=repo, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert process.returncode == 1, process.stdout + process.stderr
    assert 'token_public_key_file' in process.stdout + process.stderr
    assert 'missing.pem' in process.stdout + process.stderr


@pytest.mark.parametrize('backend', ['sqlite'], indirect=True)
def test_sigusr1_prints_every_thread_of_a_running_node_and_it_keeps_running(gate_only, probe):
    log = gate_only.logs['gate']
    probe.spin_until(lambda: 'gate started' in log.read_text(), 'the gate to start', gate_only)
    gate_only.processes['gate'].send_signal(signal.SIGUSR1)
    probe.spin_until(lambda: 'most recent call first' in log.read_text(), 'the stack dump',
                     gate_only)
    dump = log.read_text()
    assert 'most recent call first' in dump and 'rclpy' in dump, dump
    gate_only.check_alive()
