"""Drive the gate and cart_ledger node processes with a truth feed; measure them.

Test and benchmark tooling, not part of the running store. ``LedgerNodes`` starts the
nodes in their own processes (and kills / restarts them); ``FeedPlayer`` is a plain rclpy
node in its own context that publishes a ``TruthFeed`` (go_store_testing.truth_feed:
ground truth turned into check-ins, track snapshots and cart events, a TEST HARNESS that
is never a perception output) as fast as the nodes acknowledge it, and records what comes
back. No fixed sleeps: it waits on matching and on answers.

Time: the nodes run on wall time and judge every input by their own clock, so the player
stamps what it publishes with the wall clock at publication (the feed's order is kept,
its spacing is not) and signs each check-in token when it scans, with the demo key the
test nodes trust, as the app server would.

Acknowledgements come from the nodes themselves: a check-in by its CheckInResult (the
same scan re-sent every 2 s until answered: a restarted gate gives a retried scan its
visit), an entry snapshot by Visit STARTED with every member's track, an exit by Visit
ENDED, a cart event by its ``cart/event_acks`` message (sent once committed, also for a
duplicate); unacknowledged events are re-sent every ``retransmit_s``.

Benchmarks (figures are printed, not checked)::

    python -m go_store_testing.ledger_node_bench throughput --url sqlite --events 2000
    python -m go_store_testing.ledger_node_bench latency --url sqlite --runs 5
    bash tools/with_postgres.sh sh -c 'python -m go_store_testing.ledger_node_bench
        throughput --url "$GO_STORE_TEST_POSTGRES_URL"'   # (one line)

``--url sqlite`` uses a fresh SQLite file per run in a temporary folder; a PostgreSQL URL
gets a fresh schema per run (dropped afterwards). docs/ledger.md, "Durability and
figures", has the figures and what exactly they are.
"""

from __future__ import annotations

import argparse
from collections import Counter
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Iterator, Optional, Sequence
import uuid

from diagnostic_msgs.msg import DiagnosticArray, KeyValue
from go_store.msg import CartEvent, CheckIn, CheckInResult, Receipt, Track, TrackArray, Visit
from go_store.srv import GetCart
import rclpy
from rclpy.duration import Duration
from rclpy.event_handler import PublisherEventCallbacks, QoSPublisherMatchedInfo
from rclpy.executors import SingleThreadedExecutor
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from std_msgs.msg import Header

from go_store_nodes.core.ledger import Ledger, LedgerConfig, TokenIssuer
from go_store_nodes.core.ledger.ledger import normalise_url
from go_store_nodes.core.ledger.tokens import load_private_key
from go_store_nodes.core.store import load_store_description
from go_store_nodes.nodes.cart_ledger import ACKS_QOS, DURABLE_QOS, EVENTS_QOS
from go_store_nodes.nodes.gate import CHECK_IN_QOS, RELIABLE_QOS, VISITS_QOS
from go_store_nodes.ros.ledger_conversions import ns_to_stamp
from go_store_nodes.ros.share import share_dir

from .truth_feed import (
    cart_after,
    FeedCartEvent,
    FeedCheckIn,
    FeedItem,
    FeedTracks,
    simulate_feed,
    TruthFeed,
)

NODES = ('gate', 'cart_ledger')
DEFAULT_TIMEOUT_S = 30.0
# Cart events in flight before the player waits for their acknowledgements.
DEFAULT_WINDOW = 20
# Signs the player's check-in tokens (the test nodes trust its public half).
DEMO_PRIVATE_KEY = pathlib.Path('config') / 'demo_keys' / 'store_app_private.pem'
# Track snapshots published in a row without a Visit update confirming them (the gate's
# track subscription keeps the last 10).
UNCONFIRMED_SNAPSHOTS = 5


class FeedTimeoutError(AssertionError):
    """Something the player waited for did not happen in time."""


# -- node processes --------------------------------------------------------------------------


class LedgerNodes:
    """The gate and cart_ledger nodes in their own processes, on one ledger database."""

    def __init__(self, workdir: pathlib.Path, database_url: str,
                 node_overrides: Optional[dict[str, dict[str, object]]] = None,
                 **overrides: object) -> None:
        """Remember the parameters; ``start`` launches a node.

        ``overrides`` apply to both nodes, ``node_overrides[name]`` to node ``name`` only.
        """
        share = share_dir()
        self.workdir = pathlib.Path(workdir)
        self.parameters: dict[str, object] = {
            'database_url': database_url,
            'token_public_key_file': str(share / 'config' / 'demo_keys' /
                                         'store_app_public.pem'),
            'store_description': str(share / 'config' / 'store.yaml'),
            'grace_period_s': 0.0, 'receipt_check_period_s': 0.1, 'receipt_holdoff_s': 0.0,
            'diagnostics_period_s': 0.2, 'use_sim_time': False,
            # The feed runs on the wall clock at whatever pace the machine allows (and
            # stalls while a node is killed): no visit may end as lost for that.
            'visit_lost_after_s': 3600.0, 'party_left_after_s': 3600.0}
        self.parameters.update(overrides)
        self.node_overrides = node_overrides or {}
        self.params_file = share / 'config' / 'go_store.yaml'
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, list[pathlib.Path]] = {}
        self.may_exit: set[str] = set()
        self.restart_on_exit: set[str] = set()  # started again (without hook) when they die
        self.exits: list[tuple[str, int]] = []  # (node, status) of every restarted exit

    def start(self, name: str, hook: str = '') -> None:
        """Start node ``name`` (``gate`` or ``cart_ledger``); ``hook`` runs before it (tests)."""
        if name in self.processes and self.processes[name].poll() is None:
            raise RuntimeError(f'{name} is already running')
        args = ['--ros-args', '--params-file', str(self.params_file)]
        for key, value in {**self.parameters, **self.node_overrides.get(name, {})}.items():
            text_value = str(value).lower() if isinstance(value, bool) else str(value)
            args += ['-p', f'{key}:={text_value}']
        if hook:
            command = [sys.executable, '-c',
                       f'{hook}\nfrom go_store_nodes.nodes.{name} import main\nmain()\n', *args]
        else:
            command = [sys.executable, '-m', f'go_store_nodes.nodes.{name}', *args]
        logs = self.logs.setdefault(name, [])
        log_path = self.workdir / f'{name}-{len(logs) + 1}.log'
        logs.append(log_path)
        with open(log_path, 'wb') as log:
            self.processes[name] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))

    def output(self, name: str) -> str:
        """Return the log of every run of node ``name``."""
        return '\n'.join(f'--- {path.name}\n{path.read_text(errors="replace")}'
                         for path in self.logs.get(name, ()))

    def check_alive(self) -> None:
        """Raise if a started node has exited; restart those in ``restart_on_exit``."""
        for name, process in list(self.processes.items()):
            if process.poll() is not None and name in self.restart_on_exit:
                self.exits.append((name, process.returncode))
                del self.processes[name]
                self.start(name)
                continue
            if process.poll() is not None and name not in self.may_exit:
                raise AssertionError(f'{name} exited with {process.returncode}:\n'
                                     f'{self.output(name)[-4000:]}')

    def kill(self, name: str) -> int:
        """SIGKILL node ``name`` and reap it; return its exit status."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        return process.wait(timeout=DEFAULT_TIMEOUT_S)

    def expect_exit(self, name: str) -> None:
        """Let node ``name`` exit by itself (e.g. a test hook kills it): not an error."""
        self.may_exit.add(name)

    def wait_exit(self, name: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
        """Wait until node ``name`` (see ``expect_exit``) exits; return its exit status."""
        process = self.processes.pop(name)
        self.may_exit.discard(name)
        return process.wait(timeout=timeout_s)

    def stop(self) -> dict[str, int]:
        """Stop every running node with SIGINT (SIGKILL after 15 s); return exit statuses."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        codes = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        self.processes.clear()
        return codes


# -- the feed player -------------------------------------------------------------------------


def _tracks_msg(item: FeedTracks, stamp_ns: int) -> TrackArray:
    header = Header(stamp=ns_to_stamp(stamp_ns), frame_id='map')
    msg = TrackArray(header=header)
    for feed_track in item.tracks:
        track = Track(header=header, track_id=feed_track.track_id,
                      role=Track.ROLE_ASSOCIATE if feed_track.associate else Track.ROLE_SHOPPER)
        track.position.x, track.position.y = feed_track.x_m, feed_track.y_m
        track.confidence = 1.0
        msg.tracks.append(track)
    return msg


class FeedPlayer:
    """Publishes a truth feed to the gate and cart_ledger, records their answers."""

    def __init__(self, feed: TruthFeed, nodes: Optional[LedgerNodes] = None,
                 window: int = DEFAULT_WINDOW, timeout_s: float = DEFAULT_TIMEOUT_S,
                 retransmit_s: float = 5.0) -> None:
        """Create the probe node in a context of its own."""
        self.feed = feed
        self.nodes = nodes
        self.window = window
        self.timeout_s = timeout_s
        self.retransmit_s = retransmit_s
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node('ledger_feed_player', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        node = self.node
        self.results: list[CheckInResult] = []
        self.visit_msgs: list[tuple[float, Visit]] = []
        self.receipt_msgs: list[tuple[float, Receipt]] = []
        self.diagnostics: dict[str, dict[str, str]] = {}
        self.events_matched_total = 0
        node.create_subscription(CheckInResult, 'gates/check_in_result', self.results.append,
                                 RELIABLE_QOS)
        node.create_subscription(
            Visit, 'visits', lambda msg: self.visit_msgs.append((time.monotonic(), msg)),
            VISITS_QOS)
        node.create_subscription(
            Receipt, 'receipts', lambda msg: self.receipt_msgs.append((time.monotonic(), msg)),
            DURABLE_QOS)
        node.create_subscription(DiagnosticArray, 'diagnostics', self._on_diagnostics, 50)
        self.acks: dict[str, list[str]] = {}  # event id -> outcomes acknowledged
        node.create_subscription(KeyValue, 'cart/event_acks', self._on_ack, ACKS_QOS)
        self._issuer = TokenIssuer(load_private_key(share_dir() / DEMO_PRIVATE_KEY))
        self._last_stamp_ns = 0
        self._event_stamps: dict[str, int] = {}  # a re-sent event keeps its stamp
        gate_ids = sorted({item.gate_id for item in feed.check_ins}) or ['gate_entry']
        self.check_in_pubs = {gate_id: node.create_publisher(
            CheckIn, f'gates/{gate_id}/check_in', CHECK_IN_QOS) for gate_id in gate_ids}
        self.tracks_pub = node.create_publisher(TrackArray, 'people/tracks', RELIABLE_QOS)
        self.events_pub = node.create_publisher(
            CartEvent, 'cart/events', EVENTS_QOS,
            event_callbacks=PublisherEventCallbacks(matched=self._on_events_matched))
        self.get_cart_client = node.create_client(GetCart, 'ledger/get_cart')
        # Progress through the feed.
        self.position = 0
        self.visit_of: dict[str, str] = {}  # account -> visit id
        self.sent: list[FeedCartEvent] = []  # every distinct cart event sent, in order
        self.outstanding: list[FeedCartEvent] = []  # sent, not yet acknowledged
        self.ended: list[str] = []  # accounts whose Visit ENDED was seen
        self.retransmissions = 0  # cart events re-sent for want of an acknowledgement
        self.scans_resent = 0  # check-ins re-sent for want of an answer
        self.resent = 0
        self._unconfirmed_snapshots = 0

    def close(self) -> None:
        """Destroy the probe node and its context."""
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            self.diagnostics[status.name] = {kv.key: kv.value for kv in status.values}

    def _on_ack(self, msg: KeyValue) -> None:
        self.acks.setdefault(msg.key, []).append(msg.value)

    def _stamp(self) -> int:
        """Return the wall clock now, strictly after every stamp already used."""
        self._last_stamp_ns = max(time.time_ns(), self._last_stamp_ns + 1)
        return self._last_stamp_ns

    def _on_events_matched(self, info: QoSPublisherMatchedInfo) -> None:
        self.events_matched_total = info.total_count

    def counter(self, node_name: str, key: str) -> int:
        """Return a counter of the last diagnostics of ``/node_name`` (0 if absent)."""
        return int(self.diagnostics.get(node_name, {}).get(key, '0'))

    # -- waiting -----------------------------------------------------------------------------

    def spin_until(self, condition: Callable[[], object], what: str,
                   timeout_s: Optional[float] = None,
                   every: Optional[tuple[float, Callable[[], None]]] = None) -> object:
        """Spin until ``condition()`` is truthy; ``every=(s, f)`` calls f every s seconds."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        next_call = time.monotonic() + every[0] if every else None
        while not (value := condition()):
            if self.nodes is not None:
                self.nodes.check_alive()
            now = time.monotonic()
            if now > deadline:
                raise FeedTimeoutError(f'timed out waiting for {what}')
            if every is not None and next_call is not None and now > next_call:
                every[1]()
                next_call = now + every[0]
            self.executor.spin_once(timeout_sec=0.01)
        return value

    def wait_for_gate(self) -> None:
        """Wait until the gate's subscriptions and publishers match the probe's."""
        self.spin_until(lambda: all(p.get_subscription_count() > 0
                                    for p in self.check_in_pubs.values())
                        and self.tracks_pub.get_subscription_count() > 0
                        and self.node.count_publishers('visits') > 0
                        and self.node.count_publishers('gates/check_in_result') > 0,
                        'the gate to match')

    def wait_for_cart_ledger(self, matched_before: int = 0) -> None:
        """Wait until a cart_ledger matched ``cart/events`` (a new one: ``matched_before``)."""
        self.spin_until(lambda: self.events_matched_total > matched_before
                        and self.events_pub.get_subscription_count() > 0
                        and self.node.count_publishers('receipts') > 0,
                        'the cart ledger to match cart/events')
        self.spin_until(self.get_cart_client.service_is_ready, 'ledger/get_cart')

    def get_cart(self, visit_id: str) -> GetCart.Response:
        """Call ledger/get_cart (re-sent every 2 s: a restarted ledger misses old calls)."""
        future = self.get_cart_client.call_async(GetCart.Request(visit_id=visit_id))
        started = time.monotonic()
        deadline = started + self.timeout_s
        while not future.done():
            if self.nodes is not None:
                self.nodes.check_alive()
            if time.monotonic() > deadline:
                raise FeedTimeoutError(f'timed out waiting for get_cart({visit_id})')
            if time.monotonic() - started > 2.0:
                self.get_cart_client.remove_pending_request(future)
                future = self.get_cart_client.call_async(GetCart.Request(visit_id=visit_id))
                started = time.monotonic()
            self.executor.spin_once(timeout_sec=0.01)
        return future.result()

    def visit_with(self, visit_id: str, status: int, tracks: int = 0) -> list[Visit]:
        """Return the Visit messages seen of a visit with a status and >= ``tracks`` tracks."""
        return [msg for _, msg in self.visit_msgs if msg.visit_id == visit_id
                and msg.status == status and len(msg.track_ids) >= tracks]

    def issued(self, visit_id: str) -> list[Receipt]:
        """Return the ISSUED receipts seen for a visit."""
        return [msg for _, msg in self.receipt_msgs
                if msg.visit_id == visit_id and msg.status == Receipt.ISSUED]

    def wait_for_receipts(self, accounts: Optional[Sequence[str]] = None) -> None:
        """Wait for an ISSUED receipt of every ended visit (or of ``accounts``)."""
        wanted = [self.visit_of[account] for account in (accounts or self.ended)]
        try:
            self.spin_until(lambda: all(self.issued(visit_id) for visit_id in wanted),
                            f'the receipts of {len(wanted)} visits')
        except FeedTimeoutError as error:
            missing = [visit_id for visit_id in wanted if not self.issued(visit_id)]
            raise FeedTimeoutError(f'{error}: none for {missing}') from None

    # -- publishing --------------------------------------------------------------------------

    def _event_msg(self, event: FeedCartEvent) -> CartEvent:
        stamp_ns = self._event_stamps.get(event.event_id)
        if stamp_ns is None:
            stamp_ns = self._event_stamps[event.event_id] = self._stamp()
        return CartEvent(
            header=Header(stamp=ns_to_stamp(stamp_ns), frame_id='map'),
            event_id=event.event_id, visit_id=self.visit_of[event.account_id],
            account_id=event.account_id, track_id=event.track_id, sku=event.sku,
            quantity_delta=event.quantity_delta, confidence=1.0)

    def _check_in(self, item: FeedCheckIn) -> None:
        now_ns = self._stamp()
        stamp = ns_to_stamp(now_ns)
        count = len(self.results)
        scan = CheckIn(header=Header(stamp=stamp, frame_id=item.gate_id), gate_id=item.gate_id,
                       token=self._issuer.issue(item.account_id, now_ns))
        publisher = self.check_in_pubs[item.gate_id]
        publisher.publish(scan)

        def resend() -> None:  # the same scan (same stamp): a restarted gate retries it
            self.scans_resent += 1
            publisher.publish(scan)

        result = self.spin_until(
            lambda: next((r for r in self.results[count:] if r.header.stamp == stamp
                          and r.gate_id == item.gate_id), None),
            f'the check-in result of {item.account_id}', every=(2.0, resend))
        assert isinstance(result, CheckInResult)
        if not result.accepted:
            raise AssertionError(f'check-in of {item.account_id} refused: {result.reason} '
                                 f'({result.detail})')
        self.visit_of[item.account_id] = result.visit_id

    def _tracks(self, item: FeedTracks) -> None:
        if item.ended:
            # A visit's receipt may follow its exit at once: its events must be in first.
            if any(event.account_id in item.ended for event in self.outstanding):
                self.ack_events()
        self.tracks_pub.publish(_tracks_msg(item, self._stamp()))
        for account in item.joined:
            visit_id = self.visit_of[account]
            size = len(self.feed.parties[account])
            self.spin_until(lambda visit_id=visit_id, size=size: self.visit_with(
                                visit_id, Visit.STARTED, size),
                            f'visit {visit_id} of {account} to start with {size} tracks')
        for account in item.ended:
            visit_id = self.visit_of[account]
            self.spin_until(lambda visit_id=visit_id: self.visit_with(visit_id, Visit.ENDED),
                            f'visit {visit_id} of {account} to end')
            self.ended.append(account)
        if item.joined or item.ended:
            self._unconfirmed_snapshots = 0
            return
        # Nothing shows that the gate took a snapshot that changes no visit; the next one
        # that does shows all before it were taken (one subscription, in order). Keep well
        # below the gate's depth (10) in between; DDS acks come with the heartbeat (~3 s).
        self._unconfirmed_snapshots += 1
        if self._unconfirmed_snapshots >= UNCONFIRMED_SNAPSHOTS:
            self.tracks_pub.wait_for_all_acked(Duration(seconds=10))
            self._unconfirmed_snapshots = 0

    def _event(self, item: FeedCartEvent) -> None:
        self.events_pub.publish(self._event_msg(item))
        self.sent.append(item)
        self.outstanding.append(item)
        if len(self.outstanding) >= self.window:
            self.ack_events()

    def expected_carts(self) -> dict[str, dict[str, int]]:
        """Return account -> SKU -> quantity implied by every cart event sent so far."""
        return cart_after(self.sent)

    def ack_events(self) -> None:
        """Wait until the ledger acknowledged every outstanding event; re-send the others.

        The cart ledger acknowledges an event on ``cart/event_acks`` once it is committed
        (a duplicate too); what is not acknowledged after ``retransmit_s`` is sent again,
        in order, until it is.
        """
        if not self.outstanding:
            return

        def retransmit() -> None:
            waiting = [event for event in self.outstanding if event.event_id not in self.acks]
            self.retransmissions += len(waiting)
            for event in waiting:
                self.events_pub.publish(self._event_msg(event))

        self.spin_until(lambda: all(event.event_id in self.acks for event in self.outstanding),
                        f'{len(self.outstanding)} cart events to be acknowledged',
                        every=(self.retransmit_s, retransmit))
        self.outstanding.clear()

    def step(self) -> FeedItem:
        """Publish the next feed item and wait for what it needs."""
        item = self.feed.items[self.position]
        if isinstance(item, FeedCheckIn):
            self._check_in(item)
        elif isinstance(item, FeedTracks):
            self._tracks(item)
        else:
            self._event(item)
        self.position += 1
        return item

    def play(self, stop: Optional[Callable[[FeedItem], bool]] = None,
             ack: bool = True) -> None:
        """Play the feed to the end or until ``stop(next_item)``; then wait for the events.

        With ``ack`` false the events still in flight are left unacknowledged.
        """
        while self.position < len(self.feed.items):
            if stop is not None and stop(self.feed.items[self.position]):
                break
            self.step()
        if ack:
            self.ack_events()

    def burst(self, count: int) -> int:
        """Publish up to ``count`` consecutive cart events without waiting; return how many."""
        published = 0
        while published < count and self.position < len(self.feed.items) and \
                isinstance(self.feed.items[self.position], FeedCartEvent):
            item = self.feed.items[self.position]
            assert isinstance(item, FeedCartEvent)
            self.events_pub.publish(self._event_msg(item))
            self.sent.append(item)
            self.outstanding.append(item)
            self.position += 1
            published += 1
        return published

    def resend(self, overlap: int) -> list[FeedCartEvent]:
        """Re-send after a reconnect: the last ``overlap`` acknowledged and all the others.

        In their order; wait for them; return what was re-sent.
        """
        acknowledged = self.sent[:len(self.sent) - len(self.outstanding)]
        again = acknowledged[-overlap:] if overlap > 0 else []
        again += self.outstanding
        for event in again:
            self.events_pub.publish(self._event_msg(event))
        self.resent += len(again)
        self.outstanding = list(again)
        self.ack_events()
        return again


# -- figures ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the ``fraction`` quantile (linear interpolation between closest ranks)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError('no values')
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def exit_to_receipt_s(player: FeedPlayer) -> list[float]:
    """Seconds from each Visit ENDED to the first ISSUED receipt of that visit (probe clock)."""
    ended: dict[str, float] = {}
    for stamp, msg in player.visit_msgs:
        if msg.status == Visit.ENDED:
            ended.setdefault(msg.visit_id, stamp)
    issued: dict[str, float] = {}
    for stamp, receipt in player.receipt_msgs:
        if receipt.status == Receipt.ISSUED:
            issued.setdefault(receipt.visit_id, stamp)
    return [issued[visit] - ended[visit] for visit in ended if visit in issued]


def fresh_databases(url: str, workdir: pathlib.Path) -> Iterator[str]:
    """Yield a fresh database URL per run: a SQLite file, or a new PostgreSQL schema."""
    if url == 'sqlite':
        run = 0
        while True:
            run += 1
            yield f'sqlite:///{workdir / f"ledger-{run}.sqlite"}'
    base = normalise_url(url)
    admin = create_engine(base, isolation_level='AUTOCOMMIT')
    schemas: list[str] = []
    try:
        while True:
            schema = f'ledger_bench_{uuid.uuid4().hex[:12]}'
            with admin.connect() as connection:
                connection.execute(text(f'CREATE SCHEMA {schema}'))
            schemas.append(schema)
            yield make_url(base).update_query_dict(
                {'options': f'-csearch_path={schema}'}).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            for schema in schemas:
                connection.execute(text(f'DROP SCHEMA IF EXISTS {schema} CASCADE'))
        admin.dispose()


def measure_throughput(database_url: str, workdir: pathlib.Path, events: int, visits: int,
                       window: int) -> dict[str, float]:
    """Cart events per second through the cart_ledger node, acknowledged by cart/event_acks."""
    description = load_store_description(share_dir() / 'config' / 'store.yaml')
    catalog = {sku: product.price_cents for sku, product in description.catalog.items()}
    ledger = Ledger(database_url, LedgerConfig(currency=description.currency), catalog)
    now_ns = time.time_ns()
    run_id = uuid.uuid4().hex[:8]
    visit_ids = []
    for n in range(visits):
        account = f'bench-{run_id}-{n}'
        ledger.register_account(account, now_ns)
        visit_ids.append(ledger.open_visit(account, (), now_ns))
    ledger.close()
    nodes = LedgerNodes(workdir, database_url)
    nodes.start('cart_ledger')
    feed = TruthFeed('throughput', 0, (), {})
    player = FeedPlayer(feed, nodes)
    try:
        player.wait_for_cart_ledger()
        skus = sorted(catalog)
        totals: Counter[str] = Counter()
        started = time.perf_counter()
        for first in range(0, events, window):
            ids = []
            for n in range(first, min(first + window, events)):
                visit_id = visit_ids[n % visits]
                totals[visit_id] += 1
                ids.append(f'bench-{run_id}-{n}')
                player.events_pub.publish(CartEvent(
                    header=Header(stamp=ns_to_stamp(now_ns + n), frame_id='map'),
                    event_id=ids[-1], visit_id=visit_id, track_id=1,
                    sku=skus[n % len(skus)], quantity_delta=1, confidence=1.0))
            player.spin_until(lambda ids=ids: all(i in player.acks for i in ids),
                              'the window to be acknowledged')
        elapsed = time.perf_counter() - started
    finally:
        player.close()
        nodes.stop()
    return {'events_per_s': events / elapsed, 'seconds': elapsed}


def measure_latency(database_url: str, workdir: pathlib.Path, feed: TruthFeed,
                    receipt_check_period_s: float) -> tuple[list[float], float]:
    """Play the feed once on both nodes; return exit -> receipt seconds and the play time."""
    nodes = LedgerNodes(workdir, database_url, receipt_check_period_s=receipt_check_period_s)
    for name in NODES:
        nodes.start(name)
    player = FeedPlayer(feed, nodes)
    try:
        player.wait_for_gate()
        player.wait_for_cart_ledger()
        started = time.perf_counter()
        player.play()
        player.wait_for_receipts(feed.ending_accounts)
        elapsed = time.perf_counter() - started
        return exit_to_receipt_s(player), elapsed
    finally:
        player.close()
        nodes.stop()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse arguments, run a benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('what', choices=('throughput', 'latency'))
    parser.add_argument('--url', default='sqlite',
                        help="'sqlite' (a fresh file per run) or a PostgreSQL URL (a fresh "
                        'schema per run)')
    parser.add_argument('--events', type=int, default=2000, help='throughput: cart events')
    parser.add_argument('--visits', type=int, default=20, help='throughput: open visits')
    parser.add_argument('--window', type=int, default=DEFAULT_WINDOW,
                        help='throughput: events in flight before waiting for their acks')
    parser.add_argument('--scenario', default=str(share_dir() / 'config' / 'scenarios' /
                                                  'busy.yaml'), help='latency: scenario file')
    parser.add_argument('--runs', type=int, default=3, help='latency: plays of the scenario')
    parser.add_argument('--receipt-check-period', type=float, default=1.0,
                        help='latency: cart_ledger receipt_check_period_s (shipped: 1.0)')
    args = parser.parse_args(argv)
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    label = 'sqlite' if args.url == 'sqlite' else make_url(args.url).get_backend_name()
    with tempfile.TemporaryDirectory(prefix='ledger_node_bench_') as folder:
        workdir = pathlib.Path(folder)
        urls = fresh_databases(args.url, workdir)
        try:
            if args.what == 'throughput':
                figures = measure_throughput(next(urls), workdir, args.events, args.visits,
                                             args.window)
                print(f'{label}: {args.events} cart events over {args.visits} visits through '
                      f'cart_ledger, window {args.window}: {figures["events_per_s"]:.0f} '
                      f'events/s ({figures["seconds"]:.2f} s)')
                return 0
            feed = simulate_feed(args.scenario)
            latencies: list[float] = []
            for run in range(args.runs):
                values, elapsed = measure_latency(next(urls), workdir, feed,
                                                  args.receipt_check_period)
                latencies += values
                print(f'run {run + 1}: {len(values)} receipts, feed played in {elapsed:.2f} s '
                      f'({len(feed.cart_events)} cart events)')
            print(f'{label}: exit -> receipt (Visit ENDED received -> Receipt ISSUED received, '
                  f'grace 0, receipt_check_period_s {args.receipt_check_period}) over '
                  f'{len(latencies)} visits: p50 {percentile(latencies, 0.5) * 1e3:.0f} ms, '
                  f'p99 {percentile(latencies, 0.99) * 1e3:.0f} ms, max '
                  f'{max(latencies) * 1e3:.0f} ms, '
                  f'mean {statistics.fmean(latencies) * 1e3:.0f} ms')
            return 0
        finally:
            urls.close()


if __name__ == '__main__':
    sys.exit(main())
