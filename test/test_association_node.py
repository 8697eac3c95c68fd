"""Association and cart_ledger nodes over real DDS: a kill loses and doubles nothing.

Both nodes run in their own processes on a SQLite ledger (visits opened directly in the
database, as the gate would); a plain rclpy probe plays tracker, pose and weight fusion.
The association resolves picks while the ledger is down (cart events wait in its outbox),
is killed (SIGKILL), restarted with the ledger up, and every event reaches the ledger
exactly once; the same shelf events delivered again make no new cart event. Then the
visit's exit is recorded with a 60 s bounded wait and the receipt follows the watermark.
A killed ledger likewise gets, after its restart, each event re-sent to it exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray
from go_store.msg import (
    Receipt,
    ShelfEvent,
    Skeleton,
    SkeletonArray,
    SkuLikelihood,
    Track,
    TrackArray,
)
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from sqlalchemy import create_engine, text
from std_msgs.msg import Header

from go_store_nodes.core.association import bin_sites
from go_store_nodes.core.ledger import Ledger, LedgerConfig
from go_store_nodes.core.store import load_store_description
from go_store_nodes.nodes.association import RELIABLE_100, RELIABLE_1000, WATERMARK_QOS
from go_store_nodes.nodes.cart_ledger import DURABLE_QOS
from go_store_nodes.ros.ledger_conversions import ns_to_stamp

pytestmark = pytest.mark.slow
TIMEOUT_S = 40.0
S = 1_000_000_000
BIN = 'shelf_01_bin_1'
SKU = 'crispo_salted_150g'


class Nodes:
    """The association and cart_ledger processes."""

    def __init__(self, repo, tmp_path, database_url: str) -> None:
        self.repo, self.tmp_path = repo, tmp_path
        store = str(repo / 'config' / 'store.yaml')
        self.parameters = {
            'association': {
                'store_description': store, 'outbox_path': str(tmp_path / 'outbox.sqlite'),
                'tick_period_s': 0.05, 'resend_initial_s': 0.5, 'shelf_event_latency_s': 0.5,
                'diagnostics_period_s': 0.2, 'use_sim_time': False},
            'cart_ledger': {
                'store_description': store, 'database_url': database_url,
                'grace_period_s': 60.0, 'receipt_check_period_s': 0.1,
                'receipt_holdoff_s': 0.0, 'diagnostics_period_s': 0.2, 'use_sim_time': False},
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.starts: dict[str, int] = {}

    def start(self, name: str) -> None:
        args = ['--params-file', str(self.repo / 'config' / 'go_store.yaml')]
        for key, value in self.parameters[name].items():
            value_text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ['-p', f'{key}:={value_text}']
        self.starts[name] = self.starts.get(name, 0) + 1
        log = open(self.tmp_path / f'{name}-{self.starts[name]}.log', 'w')
        self.processes[name] = subprocess.Popen(
            [sys.executable, '-m', f'go_store_nodes.nodes.{name}', '--ros-args', *args],
            cwd=self.repo, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        log.close()

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            log = self.tmp_path / f'{name}-{self.starts[name]}.log'
            assert process.poll() is None, f'{name} died:\n{log.read_text()}'

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Probe:
    """Plays tracker, pose and weight fusion; records receipts, watermarks, diagnostics."""

    def __init__(self, front: tuple[float, float], visit_id: str, account_id: str) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('association_probe', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.front, self.visit_id, self.account_id = front, visit_id, account_id
        self.receipts: list[Receipt] = []
        self.watermarks: list[int] = []
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.hand_in_bin_until = 0
        node = self.node
        node.create_subscription(Receipt, 'receipts', self.receipts.append, DURABLE_QOS)
        node.create_subscription(
            Header, 'association/watermark',
            lambda m: self.watermarks.append(m.stamp.sec * S + m.stamp.nanosec), WATERMARK_QOS)
        node.create_subscription(DiagnosticArray, 'diagnostics', self._on_diagnostics, 50)
        self.tracks_pub = node.create_publisher(TrackArray, 'people/tracks', RELIABLE_100)
        self.skeletons_pub = node.create_publisher(SkeletonArray, 'people/skeletons',
                                                   RELIABLE_100)
        self.shelf_pub = node.create_publisher(ShelfEvent, 'shelves/events', RELIABLE_1000)
        self.node.create_timer(0.1, self._publish_people)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            self.diagnostics[status.name] = values

    def _publish_people(self) -> None:
        now = time.time_ns()
        header = Header(stamp=ns_to_stamp(now), frame_id='map')
        track = Track(header=header, track_id=1, role=Track.ROLE_SHOPPER,
                      visit_id=self.visit_id, account_id=self.account_id, confidence=1.0)
        track.position.x, track.position.y = self.front[0], self.front[1] - 0.5
        self.tracks_pub.publish(TrackArray(header=header, tracks=[track]))
        in_bin = BIN if now <= self.hand_in_bin_until else ''
        self.skeletons_pub.publish(SkeletonArray(header=header, skeletons=[
            Skeleton(header=header, track_id=1, right_hand_bin_id=in_bin)]))

    def pick(self, event_id: str) -> ShelfEvent:
        """Put the hand in the bin for 0.5 s, then publish the shelf event of a pick."""
        self.hand_in_bin_until = time.time_ns() + S // 2
        start = time.time_ns()
        self.spin_until(lambda: time.time_ns() > self.hand_in_bin_until + S // 5, 'the reach')
        end = self.hand_in_bin_until
        event = ShelfEvent(header=Header(stamp=ns_to_stamp(end), frame_id='shelf_01'),
                           event_id=event_id, shelf_id='shelf_01', bin_id=BIN,
                           event_type=ShelfEvent.PICK, delta_grams=-150.0,
                           start=ns_to_stamp(start), end=ns_to_stamp(end),
                           candidates=[SkuLikelihood(sku=SKU, quantity=1, likelihood=0.95)])
        self.shelf_pub.publish(event)
        return event

    def counter(self, key: str) -> int:
        return int(self.diagnostics.get('/association', {}).get(key, '0'))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def spin_until(self, condition: Callable[[], object], what: str,
                   nodes: Nodes | None = None):
        deadline = time.monotonic() + TIMEOUT_S
        while not (value := condition()):
            if nodes is not None:
                nodes.check_alive()
            assert time.monotonic() < deadline, f'timed out waiting for {what}'
            self.executor.spin_once(timeout_sec=0.02)
        return value


def stored_events(url: str) -> list[tuple[str, str, int]]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text(
            'SELECT event_id, state, quantity_delta FROM cart_events ORDER BY event_id'))
        result = [tuple(row) for row in rows]
    engine.dispose()
    return result


def test_killed_association_delivers_its_outbox_exactly_once_and_the_watermark_closes_the_bill(
        repo, tmp_path):
    url = f'sqlite:///{tmp_path / "ledger.sqlite"}'
    description = load_store_description(repo / 'config' / 'store.yaml')
    prices = {sku: p.price_cents for sku, p in description.catalog.items()}
    ledger = Ledger(url, LedgerConfig(grace_period_ns=60 * S), prices)
    ledger.register_account('acct-1', time.time_ns())
    visit_id = ledger.open_visit('acct-1', ['1'], time.time_ns())
    site = bin_sites(description)[BIN]
    nodes = Nodes(repo, tmp_path, url)
    probe = Probe((site.front_x_m, site.front_y_m), visit_id, 'acct-1')
    try:
        nodes.start('association')
        probe.spin_until(lambda: probe.shelf_pub.get_subscription_count() > 0,
                         'the association to subscribe', nodes)
        # The ledger is down: three picks are resolved and wait in the outbox.
        sent = [probe.pick(f'se-{n}') for n in range(3)]
        probe.spin_until(lambda: probe.counter('cart_events') >= 3
                         and probe.counter('unacknowledged') == 3, 'three cart events', nodes)
        nodes.kill('association')
        assert stored_events(url) == []

        nodes.start('cart_ledger')
        nodes.start('association')
        probe.spin_until(lambda: len(stored_events(url)) >= 3, 'the ledger to store them',
                         nodes)
        probe.spin_until(
            lambda: probe.diagnostics.get('/association', {}).get('unacknowledged') == '0'
            and probe.counter('events_acknowledged') >= 3, 'the acknowledgements', nodes)
        # Weight fusion delivers the same shelf events again: no new cart event.
        for event in sent:
            probe.shelf_pub.publish(event)
        probe.spin_until(lambda: probe.counter('engine_duplicate_shelf_events') >= 3,
                         'the repeats to be recognised', nodes)
        events = stored_events(url)
        assert events == [(f'cart-se-{n}', 'applied', 1) for n in range(3)]
        cart = ledger.get_cart(visit_id)
        assert [(item.sku, item.quantity) for item in cart.items] == [(SKU, 3)]

        # The exit: with a 60 s bounded wait, only the watermark can close the bill now.
        exit_ns = time.time_ns()
        ledger.mark_exit(visit_id, exit_ns)
        receipts = probe.spin_until(
            lambda: [r for r in probe.receipts if r.visit_id == visit_id
                     and r.status == Receipt.ISSUED], 'the receipt', nodes)
        latency_s = (time.time_ns() - exit_ns) / S
        print(f'exit -> receipt over DDS: {latency_s:.3f} s')
        assert latency_s < 10.0
        assert [(line.sku, line.quantity) for line in receipts[0].lines] == [(SKU, 3)]
        assert max(probe.watermarks) >= exit_ns
        assert stored_events(url) == events
    finally:
        nodes.stop()
        probe.close()
        ledger.close()


def test_killed_ledger_gets_every_event_once_after_its_restart(repo, tmp_path):
    url = f'sqlite:///{tmp_path / "ledger.sqlite"}'
    description = load_store_description(repo / 'config' / 'store.yaml')
    prices = {sku: p.price_cents for sku, p in description.catalog.items()}
    ledger = Ledger(url, LedgerConfig(grace_period_ns=60 * S), prices)
    ledger.register_account('acct-2', time.time_ns())
    visit_id = ledger.open_visit('acct-2', ['1'], time.time_ns())
    site = bin_sites(description)[BIN]
    nodes = Nodes(repo, tmp_path, url)
    probe = Probe((site.front_x_m, site.front_y_m), visit_id, 'acct-2')
    try:
        nodes.start('cart_ledger')
        nodes.start('association')
        probe.spin_until(lambda: probe.shelf_pub.get_subscription_count() > 0
                         and probe.node.count_publishers('receipts') > 0,
                         'both nodes', nodes)
        probe.pick('se-a')
        probe.spin_until(lambda: len(stored_events(url)) == 1, 'the first event', nodes)
        nodes.kill('cart_ledger')
        for name in ('se-b', 'se-c'):
            probe.pick(name)
        probe.spin_until(lambda: probe.counter('cart_events') >= 3
                         and probe.counter('cart_event_sends') >= 5,
                         'the events re-sent to nobody', nodes)
        assert len(stored_events(url)) == 1
        nodes.start('cart_ledger')
        probe.spin_until(lambda: len(stored_events(url)) == 3, 'the ledger to catch up', nodes)
        probe.spin_until(
            lambda: probe.diagnostics.get('/association', {}).get('unacknowledged') == '0',
            'the acknowledgements', nodes)
        assert stored_events(url) == [(f'cart-se-{n}', 'applied', 1) for n in 'abc']
        cart = ledger.get_cart(visit_id)
        assert [(item.sku, item.quantity) for item in cart.items] == [(SKU, 3)]
    finally:
        nodes.stop()
        probe.close()
        ledger.close()
