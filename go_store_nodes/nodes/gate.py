"""Gate node: checks QR tokens in at the entry gates, opens visits and sees them leave.

Subscribes:
  gates/<gate_id>/check_in  go_store/CheckIn, one per entry gate of the store description
  people/tracks             go_store/TrackArray (reliable): group entry and exits
Publishes:
  gates/check_in_result     go_store/CheckInResult, stamped with the CheckIn's header
  visits                    go_store/Visit STARTED / ENDED (reliable, transient local,
                            keep last 100): STARTED again while group members join
  diagnostics               diagnostic_msgs/DiagnosticArray
Check-in tokens are verified with the app server's public key against the node clock and
consumed in the ledger database with the visit they open (single use across restarts and
gates); exits are recorded there too (``mark_exit``): the cart ledger issues receipts
from that record, never from the ``visits`` topic.

The callbacks only stamp each input with the node clock and queue it; one worker thread
applies the queue in order (``SerialWorker``), so a stalled database delays the gate but
loses no scan and no snapshot (the middleware queue never fills). A database fault is
retried with backoff; a full queue is counted (``dropped_queue_full``) and logged. The
database connection itself is opened by the worker, retried until it succeeds.
Logic: go_store_nodes.core.gate; docs/ledger.md.
"""

from __future__ import annotations

import sys
import threading
from typing import Callable, Optional

from go_store.msg import CheckIn, CheckInResult, TrackArray, Visit
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core.gate import (
    account_ref,
    CheckInOutcome,
    GateConfig,
    GateLogic,
    VisitStatus,
    VisitUpdate,
)
from ..core.ledger import (
    DatabaseUnavailableError,
    is_retryable_database_error,
    Ledger,
    LedgerConfig,
)
from ..core.ledger.tokens import load_public_key, public_key_to_pem, TokenConfig
from ..core.ledger.worker import SerialWorker, WorkerConfig
from ..core.store import load_store_description
from ..ros.diagnostics import ERROR, NodeDiagnostics, OK, WARN
from ..ros.ledger_conversions import (
    check_in_result_msg,
    printable_url,
    resolve_database_url,
    resolve_share_path,
    stamp_to_ns,
    track_observations,
    visit_msg,
)
from ..ros.params import (
    DATABASE_URL,
    declare_parameters,
    DIAGNOSTICS_PERIOD,
    MissingParameterError,
    ParamSpec,
    STORE_DESCRIPTION,
)
from ..ros.share import default_store_description
from .runner import run_single_node

NS_PER_SECOND = 1_000_000_000

PARAMETERS = (
    STORE_DESCRIPTION,
    DATABASE_URL,
    ParamSpec('token_public_key_file', Parameter.Type.STRING,
              "PEM Ed25519 public key of the app server's check-in tokens; a relative path "
              'is taken from the package share folder'),
    ParamSpec('clock_skew_s', Parameter.Type.DOUBLE,
              's of clock difference tolerated between app server and gate', 0.0, 600.0),
    ParamSpec('group_window_s', Parameter.Type.DOUBLE,
              's after a scan during which people entering the gate zone join its visit',
              0.0, 60.0),
    ParamSpec('require_registered_accounts', Parameter.Type.BOOL,
              'true: refuse tokens of accounts the app server has not registered '
              '(unknown_account); false: register them on first check-in'),
    ParamSpec('future_tolerance_s', Parameter.Type.DOUBLE,
              's a track snapshot may be stamped ahead of the node clock; later ones are '
              'refused (refused_future_tracks)', 0.0, 3600.0),
    ParamSpec('max_scan_offset_s', Parameter.Type.DOUBLE,
              's a scan stamp may differ from the node clock before it is counted '
              '(scan_clock_offset); the node clock is used either way', 0.0, 3600.0),
    ParamSpec('scan_lookback_s', Parameter.Type.DOUBLE,
              's before a scan during which people seen in the gate zone count as at the '
              'scan (the scanner reports a scan after the holder reached it)', 0.0, 60.0),
    ParamSpec('visit_lost_after_s', Parameter.Type.DOUBLE,
              "s none of a visit's people may go unseen before the visit is ended into "
              'review (visits_lost_to_review): the receipt waits for staff', 1.0, 86400.0),
    ParamSpec('party_left_after_s', Parameter.Type.DOUBLE,
              "s none of a visit's people may go unseen, once one of them was seen leaving "
              'by an exit, before the visit is ended into review (a party leaves together)',
              1.0, 86400.0),
    ParamSpec('rejoin_margin_m', Parameter.Type.DOUBLE,
              'm beyond walking reach within which a new track rejoins the visit of a '
              'track lost there (tracks_rejoined)', 0.0, 20.0),
    ParamSpec('entry_margin_m', Parameter.Type.DOUBLE,
              'm around an entry zone within which a track counts as in it when people are '
              'linked to a scan (tracked positions are some tenths of a metre off)', 0.0, 5.0),
    ParamSpec('exit_margin_m', Parameter.Type.DOUBLE,
              'm around an exit or staff door zone within which a track counts as in it '
              'when the gate decides whether it left (a person may be lost a step short '
              'of the zone)', 0.0, 5.0),
    ParamSpec('scanner_min_scans', Parameter.Type.INTEGER,
              'scans of a party of one, with one person at the scan, needed before the gate '
              'trusts where it learned holders stand at an entry scanner (0: never learn; '
              'every scan with more people than its party then goes to review)', 0, 1000),
    ParamSpec('scanner_samples', Parameter.Type.INTEGER,
              'latest such scans whose holder positions are kept (their median is the '
              'scanner spot)', 1, 1000),
    ParamSpec('holder_max_distance_m', Parameter.Type.DOUBLE,
              'm from the learned scanner spot within which the nearest person at a scan '
              'of a party of one is taken for its holder', 0.0, 5.0),
    ParamSpec('holder_margin_m', Parameter.Type.DOUBLE,
              'm every other person at that scan must stand further from the spot than '
              'the holder; else the visit goes to review (tailgaters_flagged)', 0.0, 5.0),
    ParamSpec('lock_wait_s', Parameter.Type.DOUBLE,
              's one database statement waits for another writer (SQLite busy timeout, '
              'PostgreSQL lock_timeout) before the write is retried', 0.1, 600.0),
    ParamSpec('input_queue_capacity', Parameter.Type.INTEGER,
              'scans and snapshots waiting for the database at most; more are dropped '
              'and counted (dropped_queue_full)', 1, 10_000_000),
    DIAGNOSTICS_PERIOD,
)
# The demo key pair of config/demo_keys: its private half is public (in the repository).
DEMO_PUBLIC_KEY = 'config/demo_keys/store_app_public.pem'
LOST_CHECK_PERIOD_S = 1.0   # node clock: how often lost visits are looked for

VISITS_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABLE_QOS = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
CHECK_IN_QOS = QoSProfile(depth=50, history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)


class GateNode(Node):
    """Entry gates' check-in and the store's exit detection, on the ledger database."""

    def __init__(self, **kwargs) -> None:
        """Load the store, the token key and the ledger; subscribe to every entry gate."""
        super().__init__('gate', **kwargs)
        params = declare_parameters(self, PARAMETERS)
        path = params['store_description'] or str(default_store_description())
        self.description = load_store_description(path)
        key_path = resolve_share_path(params['token_public_key_file'])
        if not key_path.is_file():
            raise MissingParameterError(
                f"node 'gate': parameter 'token_public_key_file' names {key_path}, which "
                'does not exist; give the PEM public key of the app server')
        try:
            public_key = load_public_key(key_path)
            url = resolve_database_url(params['database_url'])
            config = GateConfig.from_parameters(params)
            token_config = TokenConfig(clock_skew_ns=round(params['clock_skew_s'] * NS_PER_SECOND))
            lock_wait_ms = round(params['lock_wait_s'] * 1000)
            ledger_config = LedgerConfig(
                currency=self.description.currency, sqlite_busy_timeout_ms=lock_wait_ms,
                postgres_lock_timeout_ms=lock_wait_ms)
            worker_config = WorkerConfig(capacity=params['input_queue_capacity'])
        except ValueError as error:
            raise MissingParameterError(f"node 'gate': {error}") from None
        self.diagnostics = NodeDiagnostics(self, params['diagnostics_period_s'])
        self._status_lock = threading.Lock()
        self._snapshots_dropped = False  # a snapshot was dropped since the last one queued
        self._key_problem = self._check_key(public_key)
        self.ledger: Optional[Ledger] = None
        self.logic: Optional[GateLogic] = None
        self._url = url
        self._frame_id = self.description.map_frame
        self._result_publisher = self.create_publisher(
            CheckInResult, 'gates/check_in_result', RELIABLE_QOS)
        self._visit_publisher = self.create_publisher(Visit, 'visits', VISITS_QOS)
        self._gate_subscriptions = [
            self.create_subscription(
                CheckIn, f'gates/{gate_id}/check_in',
                lambda msg, gate_id=gate_id: self.on_check_in(msg, gate_id), CHECK_IN_QOS)
            for gate_id in self._entry_gate_ids]
        self._gate_subscriptions.append(self.create_subscription(
            TrackArray, 'people/tracks', self.on_tracks, RELIABLE_QOS))
        self.diagnostics.values.update(
            store_description=path, database=printable_url(url),
            token_public_key_file=str(key_path))
        self.worker = SerialWorker(
            'gate_ledger', is_retryable_database_error, worker_config,
            on_retry=self._on_retry, on_error=self._on_job_error)
        self._set_status(WARN, f'connecting to the ledger {printable_url(url)}')
        self.worker.submit('connect', lambda: self._connect(
            ledger_config, public_key, config, token_config))
        # Steady time: the queue figures are wanted even while sim time stands still.
        self._queue_timer = self.create_timer(
            params['diagnostics_period_s'], self._report_queue,
            clock=Clock(clock_type=ClockType.STEADY_TIME))
        # Node clock (sim time in a replay): visits whose people are gone end into review
        # even while no track snapshot comes.
        self._lost_timer = self.create_timer(LOST_CHECK_PERIOD_S, self.on_clock)
        self.get_logger().info(
            f'gate started: entry gates {", ".join(self._entry_gate_ids)}, ledger '
            f'{printable_url(url)}, key {key_path}')

    @property
    def _entry_gate_ids(self) -> tuple[str, ...]:
        return tuple(g.gate_id for g in self.description.gates_of_kind('entry'))

    def _check_key(self, public_key) -> str:
        """Return why the trusted key is unsafe ('' when it is fine), logged as an error.

        The demo key's private half is in the repository: outside simulation
        (``use_sim_time`` false) anyone could sign check-in tokens for any account.
        """
        demo_path = resolve_share_path(DEMO_PUBLIC_KEY)
        if not demo_path.is_file():
            return ''
        try:
            is_demo = public_key_to_pem(load_public_key(demo_path)) == \
                public_key_to_pem(public_key)
        except ValueError:
            return ''
        if not is_demo:
            return ''
        if self.get_parameter('use_sim_time').value:
            self.get_logger().warning('trusting the demo check-in key (simulation only)')
            return ''
        problem = ('the gate trusts the DEMO check-in key, whose private half is public: '
                   'anyone can forge tokens; give the app server key in '
                   'token_public_key_file')
        self.get_logger().error(problem)
        self.diagnostics.values['demo_key'] = 'true'
        return problem

    def _set_status(self, level: bytes, message: str) -> None:
        """Set the diagnostics status; an unsafe key keeps it at ERROR."""
        with self._status_lock:
            if self._key_problem:
                level, message = ERROR, f'{self._key_problem}; {message}'
            self.diagnostics.set_status(level, message)

    def _connect(self, ledger_config: LedgerConfig, public_key, config: GateConfig,
                 token_config: TokenConfig) -> None:
        """Open (and migrate) the ledger; any failure makes the worker retry with backoff."""
        try:
            ledger = Ledger(self._url, ledger_config)
        except Exception as error:  # noqa: BLE001 - a server still starting, a bad URL
            raise DatabaseUnavailableError(
                f'cannot open the ledger {printable_url(self._url)}: {error}') from error
        self.ledger = ledger
        self.logic = GateLogic(self.description, ledger, public_key, config, token_config)
        self._set_status(OK, f'checking in at {", ".join(self.logic.entry_gate_ids)}')
        self.get_logger().info(f'gate connected to the ledger {printable_url(self._url)}')

    def _on_retry(self, label: str, error: BaseException, attempt: int,
                  delay_s: float) -> None:
        self.diagnostics.count('database_retries')
        message = (f'{label}: database not available ({type(error).__name__}: '
                   f'{str(error).splitlines()[0] if str(error) else ""}); retry {attempt} '
                   f'in {delay_s:.2f} s, nothing is lost')
        if attempt == 1 or attempt % 10 == 0:
            self.get_logger().warning(message)
        self._set_status(ERROR if label == 'connect' or attempt > 3 else WARN, message)

    def _on_job_error(self, label: str, error: BaseException) -> None:
        self._fault(f'{label} failed', error)

    def _submit(self, label: str, job: Callable[[], None]) -> bool:
        """Queue a job for the worker; False (counted and logged) when the queue is full."""
        if self.worker.submit(label, job):
            return True
        self.diagnostics.count('dropped_queue_full')
        self.get_logger().error(
            f'input queue full ({self.worker.capacity}): {label} dropped')
        self._set_status(ERROR, f'input queue full: {label} dropped')
        return False

    def on_clock(self) -> None:
        """Queue a check for visits lost for too long (the node clock's time).

        With the queue full it is skipped, not counted as a loss: the next tick checks.
        """
        now_ns = self._now_ns()
        if now_ns is not None:
            self.worker.submit('lost visits', lambda: self._lost_visits(now_ns))

    def _lost_visits(self, now_ns: int) -> None:
        """End visits whose people are gone for too long (worker thread)."""
        if self.logic is not None:
            self._publish(self.logic.on_clock(now_ns))

    def _report_queue(self) -> None:
        stats = self.worker.stats
        self.diagnostics.values.update(
            queue_depth=str(self.worker.depth), queue_high_water=str(stats.high_water),
            queue_overflowed=str(stats.overflowed))

    def destroy_node(self) -> None:
        """Stop the worker, release the database connections, then the node."""
        worker = getattr(self, 'worker', None)  # absent when the constructor failed
        if worker is not None:
            abandoned = worker.stop()
            if abandoned:
                self.get_logger().warning(f'{abandoned} queued inputs not processed at exit')
        ledger = getattr(self, 'ledger', None)
        if ledger is not None:
            ledger.close()
        super().destroy_node()

    def _now_ns(self) -> Optional[int]:
        """Return the node clock; None before sim time has started (then stamps are used)."""
        return self.get_clock().now().nanoseconds or None

    def on_check_in(self, msg: CheckIn, topic_gate_id: str) -> None:
        """Queue one scan on gates/<gate>/check_in, stamped with the node clock."""
        self.diagnostics.count('check_ins')
        now_ns = self._now_ns()
        self._submit('check-in', lambda: self._check_in(msg, topic_gate_id, now_ns))

    def _check_in(self, msg: CheckIn, topic_gate_id: str, now_ns: Optional[int]) -> None:
        """Answer one scan; publish the visit it opened (worker thread)."""
        gate_id = msg.gate_id or topic_gate_id
        updates: list[VisitUpdate] = []
        if gate_id != topic_gate_id:
            outcome = CheckInOutcome(
                gate_id=gate_id, accepted=False, reason=CheckInResult.REASON_MALFORMED,
                detail=f'scan names gate {gate_id!r} but came on gates/{topic_gate_id}/check_in')
        else:
            assert self.logic is not None  # the connect job ran first
            try:
                outcome, updates = self.logic.check_in(
                    gate_id, msg.token, stamp_to_ns(msg.header.stamp), now_ns)
            except Exception as error:
                if is_retryable_database_error(error):
                    raise  # the worker retries the same scan: it gets its visit
                self._fault(f'check-in at {gate_id} failed', error)
                outcome = CheckInOutcome(gate_id=gate_id, accepted=False, reason='',
                                         detail='gate error, please scan again')
        if outcome.accepted:
            self.diagnostics.count('accepted')
            self.get_logger().info(
                f'check-in at {gate_id}: visit {outcome.visit_id} for '
                f'{account_ref(outcome.account_id)} with tracks {list(outcome.track_ids)}')
            self.get_logger().debug(
                f'visit {outcome.visit_id}: account {outcome.account_id}')
        else:
            self.diagnostics.count(f'refused_{outcome.reason or "error"}')
            self.get_logger().warning(
                f'check-in at {gate_id} refused: {outcome.reason} ({outcome.detail})')
        self._result_publisher.publish(check_in_result_msg(outcome, msg.header))
        self._publish(updates)

    def on_tracks(self, msg: TrackArray) -> None:
        """Queue one snapshot of the live tracks, stamped with the node clock."""
        now_ns = self._now_ns()
        try:
            tracks = track_observations(msg)
        except ValueError as error:
            self.get_logger().warning(f'dropped a malformed TrackArray: {error}')
            self.diagnostics.count('dropped_malformed_tracks')
            return
        stamp_ns = stamp_to_ns(msg.header.stamp)
        with self._status_lock:
            missed = self._snapshots_dropped
            self._snapshots_dropped = False
        if not self._submit('track snapshot',
                            lambda: self._tracks(stamp_ns, tracks, now_ns, missed)):
            with self._status_lock:  # the next snapshot queued carries the loss
                self._snapshots_dropped = True

    def _tracks(self, stamp_ns: int, tracks, now_ns: Optional[int], missed: bool) -> None:
        """Link group members and detect exits from one snapshot (worker thread).

        ``missed``: snapshots before this one were dropped (queue full); a track gone since
        may have been in an exit zone in them, and the gate infers its exit.
        """
        assert self.logic is not None  # the connect job ran first
        refused = self.logic.counters.get('refused_future_tracks', 0)
        updates = self.logic.on_tracks(stamp_ns, tracks, now_ns, missed)  # db faults: retried
        self._publish(updates)
        if self.logic.counters.get('refused_future_tracks', 0) > refused:
            self._set_status(WARN, 'refused a track snapshot stamped in the future '
                             '(tracker clock ahead of the gate)')
        elif self.diagnostics.level != OK:
            self._set_status(OK, 'running')

    def _fault(self, what: str, error: BaseException) -> None:
        """Log and count an unexpected failure."""
        self.get_logger().error(f'{what}: {error!r}')
        self.diagnostics.count('errors')
        self._set_status(ERROR, f'{what}: {error}')

    def _publish(self, updates: list[VisitUpdate]) -> None:
        for update in updates:
            self._visit_publisher.publish(visit_msg(update, self._frame_id))
            self.diagnostics.count(f'visits_{update.status.value}')
            if update.status is VisitStatus.ENDED:
                self.get_logger().info(
                    f'visit {update.visit_id} ended at {update.gate_id}: tracks '
                    f'{list(update.track_ids)} left')
        assert self.logic is not None
        for key, value in dict(self.logic.counters).items():
            self.diagnostics.counters[f'logic_{key}'] = value
        self.diagnostics.values['open_visits'] = str(len(self.logic.open_visit_ids))
        self.diagnostics.values['unlinked_shoppers'] = str(len(self.logic.unlinked_track_ids))
        self.diagnostics.values['over_party_visits'] = ' '.join(self.logic.over_party_visit_ids)


def main(args: list[str] | None = None) -> None:
    """Run the gate node until shut down."""
    sys.exit(run_single_node(GateNode, args))


NODE = GateNode

if __name__ == '__main__':
    main()
