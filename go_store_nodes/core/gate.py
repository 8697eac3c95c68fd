"""Entry and exit gates: verify check-in tokens, open visits, link groups, detect exits.

Pure logic on top of the ledger (no ROS). Time is the stamp of the input (integer ns).

Check-in: a QR token scanned at an entry gate is verified offline with the app server's
public key, consumed durably through the ledger (single use survives restarts and is
shared by every gate on the database) and opens one visit. Refusals carry the reason codes
of ``CheckInResult.msg`` and open nothing; a refused token is never consumed.

Group entry: the tracks inside the gate's zone at the scan, and those entering it within
``group_window_ns`` after it, that have no visit yet and are not store associates are
linked to the visit, so one scan can bring several people.

Exit: a track has left once it was last seen (inside the store) in an exit gate zone and
then disappeared from the tracks or was seen outside the store bounds. A visit ends when
every one of its tracks has left; the exit is recorded in the ledger (``mark_exit``,
which starts the receipt grace period) and reported as a ``VisitUpdate`` ENDED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
import logging
from typing import Iterable, Optional, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from .ledger import Ledger, LedgerError, TokenReplayedError, UnknownAccountError
from .ledger.models import AccountRow
from .ledger.tokens import RejectReason, TokenConfig, TokenRejected, TokenVerifier
from .store import Gate, StoreDescription

LOGGER = logging.getLogger(__name__)

NS_PER_SECOND = 1_000_000_000
# How old the last track snapshot may be (before the scan) to count as "at the scan".
SNAPSHOT_MAX_AGE_NS = NS_PER_SECOND


@dataclass(frozen=True)
class GateConfig:
    """Policy of the gates."""

    group_window_ns: int = 3 * NS_PER_SECOND
    require_registered_accounts: bool = False

    def __post_init__(self) -> None:
        """Validate the config."""
        if isinstance(self.group_window_ns, bool) or not isinstance(self.group_window_ns, int) \
                or not 0 <= self.group_window_ns <= 60 * NS_PER_SECOND:
            raise ValueError(
                f'group_window_ns must be an int in [0, 60 s], got {self.group_window_ns!r}')
        if not isinstance(self.require_registered_accounts, bool):
            raise ValueError('require_registered_accounts must be a bool')


@dataclass(frozen=True)
class TrackObservation:
    """One live track of a track snapshot: where it stands and whether it is staff."""

    track_id: str
    x_m: float
    y_m: float
    is_associate: bool = False


class VisitStatus(str, Enum):
    """What happened to a visit."""

    STARTED = 'started'
    ENDED = 'ended'


@dataclass(frozen=True)
class VisitUpdate:
    """A visit started (again, with more tracks, during the group window) or ended."""

    visit_id: str
    account_id: str
    track_ids: tuple[str, ...]
    gate_id: str
    stamp_ns: int
    status: VisitStatus


@dataclass(frozen=True)
class CheckInOutcome:
    """The gate's answer to one scan; ``reason`` is '' when accepted."""

    gate_id: str
    accepted: bool
    reason: str = ''
    detail: str = ''
    visit_id: str = ''
    account_id: str = ''
    track_ids: tuple[str, ...] = ()


@dataclass
class _TrackState:
    """What the gate remembers of a live track."""

    x_m: float
    y_m: float
    is_associate: bool
    exit_gate: Optional[str] = None  # exit zone it was last seen in, inside the store


@dataclass
class _OpenVisit:
    """A visit this gate watches until all its tracks have left."""

    account_id: str
    gate_id: str
    opened_at_ns: int
    tracks: set[str] = field(default_factory=set)
    left: dict[str, str] = field(default_factory=dict)  # track id -> exit gate id
    ended_at_ns: Optional[int] = None


@dataclass
class _GroupWindow:
    """A scan still collecting the members of its group."""

    visit_id: str
    gate: Gate
    end_ns: int


class GateLogic:
    """Check-in, group linking and exit detection for every gate of a store."""

    def __init__(self, store: StoreDescription, ledger: Ledger,
                 public_key: Ed25519PublicKey, config: Optional[GateConfig] = None,
                 token_config: Optional[TokenConfig] = None) -> None:
        """Keep the store zones and the ledger; build the token verifier."""
        self._config = config or GateConfig()
        self._ledger = ledger
        self._entry = {gate.gate_id: gate for gate in store.gates_of_kind('entry')}
        self._exit = store.gates_of_kind('exit')
        self._all_gates = {gate.gate_id: gate for gate in store.gates}
        self._width_m, self._depth_m = store.size_m
        self._verifier = TokenVerifier(
            public_key, token_config or TokenConfig(),
            account_exists=self._account_allowed, consume=ledger.consume_token)
        self._live: dict[str, _TrackState] = {}
        self._track_visit: dict[str, Optional[str]] = {}
        self._visits: dict[str, _OpenVisit] = {}
        self._windows: list[_GroupWindow] = []
        self._snapshot_stamp_ns: Optional[int] = None
        self.counters: dict[str, int] = {}

    # -- introspection --------------------------------------------------------------------

    @property
    def entry_gate_ids(self) -> tuple[str, ...]:
        """Return the ids of the entry gates (where check-ins are accepted)."""
        return tuple(self._entry)

    @property
    def open_visit_ids(self) -> tuple[str, ...]:
        """Return the visits this gate is watching (opened and not yet ended)."""
        return tuple(self._visits)

    def _count(self, key: str, increment: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + increment

    # -- check-in -------------------------------------------------------------------------

    def _account_allowed(self, account_id: str) -> bool:
        """Return False for a deactivated account, or an unknown one if it must be registered."""
        with self._ledger.engine.connect() as connection:
            active = connection.execute(
                select(AccountRow.active).where(AccountRow.account_id == account_id)
            ).scalar_one_or_none()
        if active is None:
            return not self._config.require_registered_accounts
        return bool(active)

    def _refuse(self, gate_id: str, reason: RejectReason, detail: str) -> CheckInOutcome:
        self._count(f'refused_{reason.value}')
        return CheckInOutcome(gate_id=gate_id, accepted=False, reason=reason.value,
                              detail=detail)

    def check_in(self, gate_id: str, token: str, stamp_ns: int
                 ) -> tuple[CheckInOutcome, list[VisitUpdate]]:
        """Verify a scan at an entry gate and open its visit; return the answer and updates."""
        gate = self._entry.get(gate_id)
        if gate is None:
            if gate_id in self._all_gates:
                detail = (f'gate {gate_id!r} is a {self._all_gates[gate_id].kind} gate; '
                          f'check-ins are taken at {", ".join(self._entry)}')
            else:
                detail = (f'unknown gate {gate_id!r}; entry gates of this store: '
                          f'{", ".join(self._entry)}')
            return self._refuse(gate_id, RejectReason.MALFORMED, detail), []
        try:
            verified = self._verifier.verify(token, stamp_ns)
        except TokenRejected as rejected:
            return self._refuse(gate_id, rejected.reason, str(rejected)), []
        account_id = verified.account_id
        if not self._ledger.account_exists(account_id):
            # Not required to be registered (the verifier checked): register on first visit.
            self._ledger.register_account(account_id, stamp_ns)
            self._count('accounts_registered')
        candidates = self._tracks_at_scan(gate, stamp_ns)
        try:
            visit_id = self._open(account_id, candidates, stamp_ns, verified.token_id)
        except TokenReplayedError as error:
            return self._refuse(gate_id, RejectReason.REPLAYED, str(error)), []
        except UnknownAccountError as error:
            return self._refuse(gate_id, RejectReason.UNKNOWN_ACCOUNT, str(error)), []
        visit = _OpenVisit(account_id=account_id, gate_id=gate_id, opened_at_ns=stamp_ns)
        self._visits[visit_id] = visit
        for track_id in self._ledger.get_visit(visit_id).track_ids:
            visit.tracks.add(track_id)
            self._track_visit[track_id] = visit_id
        self._count('visits_opened')
        self._count('tracks_linked', len(visit.tracks))
        if self._config.group_window_ns > 0:
            self._windows.append(_GroupWindow(
                visit_id=visit_id, gate=gate, end_ns=stamp_ns + self._config.group_window_ns))
        outcome = CheckInOutcome(
            gate_id=gate_id, accepted=True, detail=f'welcome: {len(visit.tracks)} linked',
            visit_id=visit_id, account_id=account_id, track_ids=tuple(sorted(visit.tracks)))
        return outcome, [self._update(visit_id, visit, stamp_ns, VisitStatus.STARTED, gate_id)]

    def _open(self, account_id: str, track_ids: Sequence[str], stamp_ns: int,
              token_id: str) -> str:
        """Open the visit with its tracks; tracks another writer linked meanwhile are skipped."""
        try:
            return self._ledger.open_visit(account_id, track_ids, stamp_ns, token_id)
        except (TokenReplayedError, UnknownAccountError):
            raise
        except LedgerError as error:
            if not track_ids:
                raise
            LOGGER.warning('opening the visit with tracks %s failed (%s); linking one by one',
                           list(track_ids), error)
        visit_id = self._ledger.open_visit(account_id, (), stamp_ns, token_id)
        for track_id in track_ids:
            if self._ledger.visit_for_track(track_id) is None:
                self._ledger.add_track(visit_id, track_id, stamp_ns)
        return visit_id

    def _tracks_at_scan(self, gate: Gate, stamp_ns: int) -> list[str]:
        """Return the unlinked shoppers in the gate zone in the latest (fresh) snapshot."""
        if self._snapshot_stamp_ns is None or \
                self._snapshot_stamp_ns < stamp_ns - SNAPSHOT_MAX_AGE_NS:
            return []
        return sorted(track_id for track_id, state in self._live.items()
                      if self._linkable(track_id, state, gate))

    def _linkable(self, track_id: str, state: _TrackState, gate: Gate) -> bool:
        return (not state.is_associate and self._track_visit.get(track_id) is None
                and gate.contains(state.x_m, state.y_m))

    # -- tracks ---------------------------------------------------------------------------

    def on_tracks(self, stamp_ns: int, tracks: Iterable[TrackObservation]
                  ) -> list[VisitUpdate]:
        """Take one snapshot of every live track; link group members, detect exits."""
        if self._snapshot_stamp_ns is not None and stamp_ns < self._snapshot_stamp_ns:
            self._count('dropped_out_of_order_tracks')
            return []
        snapshot = {track.track_id: track for track in tracks}
        changed: set[str] = set()
        for track_id in snapshot.keys() - self._live.keys():
            self._learn(track_id, snapshot)
        for track_id in self._live.keys() - snapshot.keys():
            changed |= self._disappeared(track_id)
        for track in snapshot.values():
            changed |= self._observe(track)
        self._snapshot_stamp_ns = stamp_ns
        updates = self._link_group_members(stamp_ns)
        for visit_id in list(self._visits):
            visit = self._visits[visit_id]
            if visit_id in changed and visit.tracks and visit.tracks.issubset(visit.left):
                visit.ended_at_ns = visit.ended_at_ns or stamp_ns
            if visit.ended_at_ns is not None:
                updates.append(self._end(visit_id, visit))
        return updates

    def _learn(self, track_id: str, snapshot: dict[str, TrackObservation]) -> None:
        """Look up a track never seen live before (e.g. after a gate restart)."""
        if track_id in self._track_visit:
            return
        visit_id = self._ledger.visit_for_track(track_id)
        self._track_visit[track_id] = visit_id
        if visit_id is None or visit_id in self._visits:
            return
        info = self._ledger.get_visit(visit_id)
        if info.state != 'open':
            return
        visit = _OpenVisit(account_id=info.account_id, gate_id='', opened_at_ns=info.opened_at_ns,
                           tracks=set(info.track_ids))
        self._visits[visit_id] = visit
        for member in info.track_ids:
            self._track_visit[member] = visit_id
            if member not in snapshot and member not in self._live:
                LOGGER.warning('visit %s recovered: its track %s is not live; the visit '
                               'ends only when it is seen leaving', visit_id, member)
                self._count('tracks_lost')
        self._count('visits_recovered')

    def _observe(self, track: TrackObservation) -> set[str]:
        """Update a live track; return the visit whose exit state may have changed."""
        state = self._live.get(track.track_id)
        if state is None:
            state = self._live[track.track_id] = _TrackState(
                track.x_m, track.y_m, track.is_associate)
        state.x_m, state.y_m, state.is_associate = track.x_m, track.y_m, track.is_associate
        visit_id = self._track_visit.get(track.track_id)
        visit = self._visits.get(visit_id) if visit_id else None
        inside = 0.0 <= track.x_m <= self._width_m and 0.0 <= track.y_m <= self._depth_m
        if inside:
            state.exit_gate = next((gate.gate_id for gate in self._exit
                                    if gate.contains(track.x_m, track.y_m)), None)
            if visit is not None and visit.left.pop(track.track_id, None) is not None:
                self._count('tracks_returned')
            return set()
        if visit is not None and state.exit_gate is not None:
            visit.left[track.track_id] = state.exit_gate
            assert visit_id is not None
            return {visit_id}
        return set()

    def _disappeared(self, track_id: str) -> set[str]:
        """Forget a track that is no longer live; it left if last seen in an exit zone."""
        state = self._live.pop(track_id)
        visit_id = self._track_visit.get(track_id)
        visit = self._visits.get(visit_id) if visit_id else None
        if visit is None or visit_id is None:
            self._track_visit.pop(track_id, None)  # ids are never reused: nothing to keep
            return set()
        if state.exit_gate is not None:
            visit.left[track_id] = state.exit_gate
            return {visit_id}
        if track_id not in visit.left:
            LOGGER.warning('track %s of visit %s disappeared inside the store (not in an '
                           'exit zone); the visit stays open', track_id, visit_id)
            self._count('tracks_lost')
        return set()

    def _link_group_members(self, stamp_ns: int) -> list[VisitUpdate]:
        """Link unlinked shoppers in the zone of a scan whose group window is open."""
        self._windows = [w for w in self._windows
                         if w.end_ns >= stamp_ns and w.visit_id in self._visits]
        updates = []
        for window in sorted(self._windows, key=lambda w: -w.end_ns):  # latest scan first
            visit = self._visits[window.visit_id]
            added = []
            for track_id, state in sorted(self._live.items()):
                if not self._linkable(track_id, state, window.gate):
                    continue
                if self._ledger.visit_for_track(track_id) is not None:
                    continue  # linked by another gate process meanwhile
                self._ledger.add_track(window.visit_id, track_id, stamp_ns)
                self._track_visit[track_id] = window.visit_id
                visit.tracks.add(track_id)
                added.append(track_id)
            if added:
                self._count('tracks_linked', len(added))
                updates.append(self._update(window.visit_id, visit, visit.opened_at_ns,
                                            VisitStatus.STARTED, window.gate.gate_id))
        return updates

    def _end(self, visit_id: str, visit: _OpenVisit) -> VisitUpdate:
        """Record the exit in the ledger, forget the visit and report it ended."""
        assert visit.ended_at_ns is not None
        self._ledger.mark_exit(visit_id, visit.ended_at_ns)
        del self._visits[visit_id]
        for track_id in visit.tracks:
            if track_id not in self._live:
                self._track_visit.pop(track_id, None)
        self._count('visits_ended')
        last_gate = next(reversed(visit.left.values()), '')
        return self._update(visit_id, visit, visit.ended_at_ns, VisitStatus.ENDED, last_gate)

    @staticmethod
    def _update(visit_id: str, visit: _OpenVisit, stamp_ns: int, status: VisitStatus,
                gate_id: str) -> VisitUpdate:
        return VisitUpdate(visit_id=visit_id, account_id=visit.account_id,
                           track_ids=tuple(sorted(visit.tracks)), gate_id=gate_id,
                           stamp_ns=stamp_ns, status=status)
