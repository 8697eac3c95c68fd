"""Gate node: checks QR tokens in at the entry gates, opens visits and sees them leave.

Subscribes:
  gates/<gate_id>/check_in  go_store/CheckIn, one per entry gate of the store description
  people/tracks             go_store/TrackArray (reliable): group entry and exits
Publishes:
  gates/check_in_result     go_store/CheckInResult, stamped with the CheckIn's header
  visits                    go_store/Visit STARTED / ENDED (reliable, transient local,
                            keep last 100): STARTED again while group members join
  diagnostics               diagnostic_msgs/DiagnosticArray
Check-in tokens are verified with the app server's public key and consumed in the ledger
database (single use across restarts and gates); exits are recorded there too
(``mark_exit``). Logic: go_store_nodes.core.gate; docs/ledger.md.
"""

from __future__ import annotations

import sys

from go_store.msg import CheckIn, CheckInResult, TrackArray, Visit
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core.gate import CheckInOutcome, GateConfig, GateLogic, VisitStatus, VisitUpdate
from ..core.ledger import Ledger, LedgerConfig
from ..core.ledger.tokens import load_public_key, TokenConfig
from ..core.store import load_store_description
from ..ros.diagnostics import ERROR, NodeDiagnostics, OK
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
    DIAGNOSTICS_PERIOD,
)

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
            config = GateConfig(
                group_window_ns=round(params['group_window_s'] * NS_PER_SECOND),
                require_registered_accounts=params['require_registered_accounts'])
            token_config = TokenConfig(clock_skew_ns=round(params['clock_skew_s'] * NS_PER_SECOND))
        except ValueError as error:
            raise MissingParameterError(f"node 'gate': {error}") from None
        self.diagnostics = NodeDiagnostics(self, params['diagnostics_period_s'])
        self.ledger = Ledger(url, LedgerConfig(currency=self.description.currency))
        self.logic = GateLogic(self.description, self.ledger, public_key, config, token_config)
        self._frame_id = self.description.map_frame
        self._result_publisher = self.create_publisher(
            CheckInResult, 'gates/check_in_result', RELIABLE_QOS)
        self._visit_publisher = self.create_publisher(Visit, 'visits', VISITS_QOS)
        self._gate_subscriptions = [
            self.create_subscription(
                CheckIn, f'gates/{gate_id}/check_in',
                lambda msg, gate_id=gate_id: self.on_check_in(msg, gate_id), CHECK_IN_QOS)
            for gate_id in self.logic.entry_gate_ids]
        self._gate_subscriptions.append(self.create_subscription(
            TrackArray, 'people/tracks', self.on_tracks, RELIABLE_QOS))
        self.diagnostics.values.update(
            store_description=path, database=printable_url(url),
            token_public_key_file=str(key_path))
        self.diagnostics.set_status(
            OK, f'checking in at {", ".join(self.logic.entry_gate_ids)}')
        self.get_logger().info(
            f'gate ready: entry gates {", ".join(self.logic.entry_gate_ids)}, ledger '
            f'{printable_url(url)}, key {key_path}')

    def destroy_node(self) -> None:
        """Release the database connections, then the node."""
        ledger = getattr(self, 'ledger', None)  # absent when the constructor failed
        if ledger is not None:
            ledger.close()
        super().destroy_node()

    def on_check_in(self, msg: CheckIn, topic_gate_id: str) -> None:
        """Answer one scan on gates/<gate>/check_in; publish the visit it opened."""
        self.diagnostics.count('check_ins')
        gate_id = msg.gate_id or topic_gate_id
        updates: list[VisitUpdate] = []
        if gate_id != topic_gate_id:
            outcome = CheckInOutcome(
                gate_id=gate_id, accepted=False, reason=CheckInResult.REASON_MALFORMED,
                detail=f'scan names gate {gate_id!r} but came on gates/{topic_gate_id}/check_in')
        else:
            try:
                outcome, updates = self.logic.check_in(
                    gate_id, msg.token, stamp_to_ns(msg.header.stamp))
            except Exception as error:  # noqa: BLE001 - a database fault must not stop the gate
                self._fault(f'check-in at {gate_id} failed', error)
                outcome = CheckInOutcome(gate_id=gate_id, accepted=False, reason='',
                                         detail='gate error, please scan again')
        if outcome.accepted:
            self.diagnostics.count('accepted')
            self.get_logger().info(
                f'check-in at {gate_id}: visit {outcome.visit_id} for account '
                f'{outcome.account_id} with tracks {list(outcome.track_ids)}')
        else:
            self.diagnostics.count(f'refused_{outcome.reason or "error"}')
            self.get_logger().warning(
                f'check-in at {gate_id} refused: {outcome.reason} ({outcome.detail})')
        self._result_publisher.publish(check_in_result_msg(outcome, msg.header))
        self._publish(updates)

    def on_tracks(self, msg: TrackArray) -> None:
        """Link group members and detect exits from one snapshot of the live tracks."""
        try:
            tracks = track_observations(msg)
        except ValueError as error:
            self.get_logger().warning(f'dropped a malformed TrackArray: {error}')
            self.diagnostics.count('dropped_malformed_tracks')
            return
        try:
            updates = self.logic.on_tracks(stamp_to_ns(msg.header.stamp), tracks)
        except Exception as error:  # noqa: BLE001 - retried with the next snapshot
            self._fault('processing tracks failed', error)
            return
        self._publish(updates)
        if self.diagnostics.level == ERROR:
            self.diagnostics.set_status(OK, 'recovered')

    def _fault(self, what: str, error: Exception) -> None:
        """Log and count an unexpected failure (e.g. the database is unreachable)."""
        self.get_logger().error(f'{what}: {error!r}')
        self.diagnostics.count('errors')
        self.diagnostics.set_status(ERROR, f'{what}: {error}')

    def _publish(self, updates: list[VisitUpdate]) -> None:
        for update in updates:
            self._visit_publisher.publish(visit_msg(update, self._frame_id))
            self.diagnostics.count(f'visits_{update.status.value}')
            if update.status is VisitStatus.ENDED:
                self.get_logger().info(
                    f'visit {update.visit_id} ended at {update.gate_id}: tracks '
                    f'{list(update.track_ids)} left')
        for key, value in self.logic.counters.items():
            self.diagnostics.counters[f'logic_{key}'] = value
        self.diagnostics.values['open_visits'] = str(len(self.logic.open_visit_ids))


def main(args: list[str] | None = None) -> None:
    """Run the gate node until shut down."""
    sys.exit(run_single_node(GateNode, args))


NODE = GateNode

if __name__ == '__main__':
    main()
