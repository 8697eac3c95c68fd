"""Entry and exit gates: verify check-in tokens, open visits, link groups, detect exits.

Pure logic on top of the ledger (no ROS). Times are integer ns.

One clock: every decision uses the gate's own time ``now_ns`` (the node clock when the
input was received; sim time under replay), never a stamp a sender wrote. Token expiry is
checked against it, group windows and "tracks at the scan" are measured on it, and exits
are recorded at it. A scan or snapshot stamp is only compared with it: a scan stamp far
from it is counted (``scan_clock_offset``), a snapshot stamped beyond
``future_tolerance_ns`` ahead of it is refused (``refused_future_tracks``) without
changing what later snapshots are compared with. Callers that pass no ``now_ns`` (tests,
offline tools) get the stamp as the time.

Check-in: a QR token scanned at an entry gate is verified offline with the app server's
public key; the ledger consumes it in the same transaction that opens its visit, so single
use survives restarts and is shared by every gate on the database, and a fault between
the two leaves neither done. The same token scanned again while its visit is open (the
scanner retrying after a fault or a gate restart) gets that visit back. Refusals carry
the reason codes of ``CheckInResult.msg`` and open nothing; a refused token is never
consumed.

Group entry: the tracks inside the gate's zone at the scan, and those entering it within
``group_window_ns`` after it, that have no visit yet and are not store associates are
linked to the visit, so one scan can bring several people. When more walk in than the
token's stated party size (``VerifiedToken.party_size``), someone tailgated. The gate
decides who only when the tracks say it clearly:

- a party of one, more people at the scan: the holder stands at the scanner. The gate
  learns that spot per entry gate from scans with one person at them (``scanner_spot``);
  the person nearest it, by a margin, is the party and the others are tailgaters;
- a party that all stood at its scan: anyone walking in during its group window after
  it is a tailgater (unless one of the party was lost meanwhile: it may be them again).

A tailgater is linked to no visit and flagged (``tailgaters_flagged``,
``tailgaters_unlinked``, ``unlinked_track_ids``, a warning): its items reach no cart.
Otherwise (the spot not learned yet, two people as near it, a larger party with a
stranger at the scan) everyone stays linked, nobody's items are lost, and the visit is
flagged (``tailgaters_flagged``, ``over_party_visit_ids``, a warning) and ends into
review: its receipt waits for staff, so nobody is billed for a tailgater's items
without a person deciding. A visit that still has no
track when its window closes is ended at once (an empty cart: nothing to charge), so it
does not stay open for ever. A shopper seen in the store (outside the entry zones) with
no visit is flagged (``unlinked_shoppers``, ``unlinked_track_ids``), never billed.

Exit: each live track keeps a bounded history of where it was seen. It has left once it
was last seen (inside the store) in an exit gate zone and then disappeared from the tracks
or was seen outside the store bounds; when snapshots are missing before it disappeared
(a gap longer than ``max_snapshot_gap_ns``), it has left if from its last position it
could have walked into an exit zone in that gap (``exits_inferred_after_gap``). A visit
ends when every one of its tracks has left; a shopper's track that leaves by a staff door
counts as left too (the person is gone, or the track took on an associate's identity),
but the visit then ends into review (``left_by_staff_door``): its receipt waits for
staff instead of for a lost-visit timeout. The exit is recorded in the ledger
(``mark_exit``, which starts the receipt grace period) and reported as a ``VisitUpdate``
ENDED. The cart ledger issues receipts from that record only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
import hashlib
import logging
import math
import statistics
from typing import Any, Deque, Iterable, Mapping, Optional, Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from .ledger import Ledger, LedgerError, TokenReplayedError, UnknownAccountError
from .ledger.models import AccountRow
from .ledger.tokens import (
    RejectReason,
    TokenConfig,
    TokenRejected,
    TokenVerifier,
    VerifiedToken,
)
from .store import Gate, StoreDescription

LOGGER = logging.getLogger(__name__)

NS_PER_SECOND = 1_000_000_000
# How old the last track snapshot may be (before the scan) to count as "at the scan".
SNAPSHOT_MAX_AGE_NS = NS_PER_SECOND


def _check_ns(name: str, value: object, low_ns: int, high_ns: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low_ns <= value <= high_ns:
        raise ValueError(f'{name} must be an int in [{low_ns / NS_PER_SECOND:g} s, '
                         f'{high_ns / NS_PER_SECOND:g} s], got {value!r}')


def account_ref(account_id: str) -> str:
    """Return a short stable pseudonym of an account id for logs (not the id itself)."""
    return 'acct#' + hashlib.sha256(account_id.encode('utf-8')).hexdigest()[:10]


@dataclass(frozen=True)
class GateConfig:
    """Policy of the gates."""

    group_window_ns: int = 3 * NS_PER_SECOND
    require_registered_accounts: bool = False
    # A snapshot stamped further ahead of the gate clock is refused (a tracker clock jump).
    future_tolerance_ns: int = 5 * NS_PER_SECOND
    # A scan stamp further than this from the gate clock is counted and logged.
    max_scan_offset_ns: int = 5 * NS_PER_SECOND
    # Positions kept per live track (the exit is derived from them).
    track_history_length: int = 32
    # Snapshots further apart than this mean some were missed: the exit is inferred.
    max_snapshot_gap_ns: int = NS_PER_SECOND
    # Fastest walk assumed when inferring an exit across a gap, m/s, and the farthest a
    # track may have been last seen from an exit zone for that (m).
    walking_speed_mps: float = 2.0
    exit_approach_m: float = 2.0
    # The scanner reports a scan 0.5-3 s after the holder reached it: people seen in the
    # gate zone this long before the scan count as "at the scan".
    scan_lookback_ns: int = 3 * NS_PER_SECOND
    # A visit none of whose people has been seen for this long (lost in the store, never
    # seen leaving) is ended into review: staff confirm the cart before its receipt.
    visit_lost_after_ns: int = 120 * NS_PER_SECOND
    # ... or this long, once one of its people was seen leaving by an exit: a party leaves
    # together, so the others are most likely gone too, lost by the tracker at the door.
    party_left_after_ns: int = 30 * NS_PER_SECOND
    # A new track appearing within walking reach (plus this margin, m) of where a visit's
    # track was lost, within ``visit_lost_after_ns``, rejoins that visit.
    rejoin_margin_m: float = 1.0
    # A track this close to an entry zone counts as in it when linking people to a scan:
    # a tracked position is a few tenths of a metre off, and the scanner is at the edge.
    entry_margin_m: float = 0.0
    # A track this close to an exit or staff door zone counts as in it when the gate
    # decides whether it left: a tracker may lose a person a step short of the zone.
    exit_margin_m: float = 0.0
    # Who scanned: the gate learns where holders stand at an entry gate's scanner from
    # scans with a party of one and one person at the scan (the median of the last
    # ``scanner_samples`` of them, once there are ``scanner_min_scans``). When more people
    # stand at a scan than its party, the one nearest that spot is the holder if within
    # ``holder_max_distance_m`` of it and everyone else is at least ``holder_margin_m``
    # further away; 0 scans: never learned (every such visit goes to review).
    scanner_min_scans: int = 2
    scanner_samples: int = 15
    holder_max_distance_m: float = 0.5
    holder_margin_m: float = 0.3

    @classmethod
    def from_parameters(cls, params: Mapping[str, Any]) -> GateConfig:
        """Build the config from the gate node's parameters (times in s; see the yaml).

        Raises ValueError for a value out of range, KeyError for a missing one.
        """
        values: dict[str, Any] = {}
        for name in ('group_window', 'future_tolerance', 'max_scan_offset', 'scan_lookback',
                     'visit_lost_after', 'party_left_after'):
            values[f'{name}_ns'] = round(float(params[f'{name}_s']) * NS_PER_SECOND)
        for name in ('require_registered_accounts', 'rejoin_margin_m', 'entry_margin_m',
                     'exit_margin_m', 'scanner_min_scans', 'scanner_samples',
                     'holder_max_distance_m', 'holder_margin_m'):
            values[name] = params[name]
        return cls(**values)

    def __post_init__(self) -> None:
        """Validate the config."""
        _check_ns('group_window_ns', self.group_window_ns, 0, 60 * NS_PER_SECOND)
        _check_ns('scan_lookback_ns', self.scan_lookback_ns, 0, 60 * NS_PER_SECOND)
        _check_ns('visit_lost_after_ns', self.visit_lost_after_ns, NS_PER_SECOND,
                  24 * 3600 * NS_PER_SECOND)
        _check_ns('party_left_after_ns', self.party_left_after_ns, NS_PER_SECOND,
                  self.visit_lost_after_ns)
        if not (isinstance(self.rejoin_margin_m, (int, float))
                and math.isfinite(self.rejoin_margin_m) and 0.0 <= self.rejoin_margin_m <= 20.0):
            raise ValueError(f'rejoin_margin_m must be in [0, 20], got {self.rejoin_margin_m!r}')
        for name in ('entry_margin_m', 'exit_margin_m', 'holder_max_distance_m',
                     'holder_margin_m'):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value)
                    and 0.0 <= value <= 5.0):
                raise ValueError(f'{name} must be in [0, 5], got {value!r}')
        for name, high in (('scanner_min_scans', 1000), ('scanner_samples', 1000)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
                raise ValueError(f'{name} must be an int in [0, {high}], got {value!r}')
        if not isinstance(self.require_registered_accounts, bool):
            raise ValueError('require_registered_accounts must be a bool')
        _check_ns('future_tolerance_ns', self.future_tolerance_ns, 0, 3600 * NS_PER_SECOND)
        _check_ns('max_scan_offset_ns', self.max_scan_offset_ns, 0, 3600 * NS_PER_SECOND)
        _check_ns('max_snapshot_gap_ns', self.max_snapshot_gap_ns, 1, 60 * NS_PER_SECOND)
        if isinstance(self.track_history_length, bool) \
                or not isinstance(self.track_history_length, int) \
                or not 1 <= self.track_history_length <= 10_000:
            raise ValueError('track_history_length must be an int in [1, 10000], '
                             f'got {self.track_history_length!r}')
        if not (isinstance(self.walking_speed_mps, (int, float))
                and math.isfinite(self.walking_speed_mps)
                and 0.0 < self.walking_speed_mps <= 10.0):
            raise ValueError(
                f'walking_speed_mps must be in (0, 10], got {self.walking_speed_mps!r}')
        if not (isinstance(self.exit_approach_m, (int, float))
                and math.isfinite(self.exit_approach_m) and 0.0 <= self.exit_approach_m <= 20.0):
            raise ValueError(f'exit_approach_m must be in [0, 20], got {self.exit_approach_m!r}')


@dataclass(frozen=True)
class TrackObservation:
    """One live track of a track snapshot: where it stands and whether it is staff."""

    track_id: str
    x_m: float
    y_m: float
    is_associate: bool = False
    # Stamp of the detection last fused into the track (None: not given). While it stays
    # the same the track is coasting and its position is a prediction.
    seen_ns: Optional[int] = None


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
    """What the gate remembers of a live track: where it was seen (gate time, map m)."""

    x_m: float
    y_m: float
    is_associate: bool
    history: Deque[tuple[int, float, float]]
    exit_gate: Optional[str] = None  # exit or staff zone it was last seen in, inside the store
    seen_ns: Optional[int] = None    # the tracker's stamp of its last fused detection

    @property
    def last_seen_ns(self) -> int:
        return self.history[-1][0]


@dataclass
class _OpenVisit:
    """A visit this gate watches until all its tracks have left."""

    account_id: str
    gate_id: str
    opened_at_ns: int
    tracks: set[str] = field(default_factory=set)
    left: dict[str, str] = field(default_factory=dict)  # track id -> exit gate id
    ended_at_ns: Optional[int] = None
    # Gate time any of its tracks was last seen (opened_at_ns until one is).
    last_seen_ns: int = 0
    # Lost tracks whose person came back under a new track id (that one is in ``tracks``).
    retired: set[str] = field(default_factory=set)
    review_reason: str = ''
    # People the token said walk in on it; 0: not stated (everyone in the window).
    party_size: int = 0
    # The whole party stood at the scan: anyone walking in later during its group window
    # is over the party and is not linked to it.
    full_at_scan: bool = False
    # Tracks taken for tailgaters on this scan: never linked to it, flagged instead.
    tailgaters: set[str] = field(default_factory=set)

    def over_party(self) -> int:
        """Return how many more people it linked than its token said walk in (0: none)."""
        if not self.party_size:
            return 0
        return max(0, len(self.tracks - self.retired) - self.party_size)

    def all_left(self) -> bool:
        """Whether everyone of the visit has been seen leaving."""
        present = self.tracks - self.retired
        return bool(present) and present.issubset(self.left)


@dataclass(frozen=True)
class _LostTrack:
    """A track of an open visit that disappeared inside the store (gate time, map m)."""

    visit_id: str
    last_seen_ns: int
    x_m: float
    y_m: float


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
        # Ways out for a visit's track: exits, and staff doors (into review).
        self._doors = self._exit + store.gates_of_kind('staff')
        self._staff_doors = {gate.gate_id for gate in store.gates_of_kind('staff')}
        self._all_gates = {gate.gate_id: gate for gate in store.gates}
        self._width_m, self._depth_m = store.size_m
        # No ``consume``: the ledger consumes the token with the visit (one transaction).
        self._verifier = TokenVerifier(
            public_key, token_config or TokenConfig(), account_exists=self._account_allowed)
        self._live: dict[str, _TrackState] = {}
        self._track_visit: dict[str, Optional[str]] = {}
        self._visits: dict[str, _OpenVisit] = {}
        self._windows: list[_GroupWindow] = []
        self._snapshot_stamp_ns: Optional[int] = None  # stamp of the last accepted snapshot
        self._snapshot_now_ns: Optional[int] = None  # gate time it was received
        self._unlinked: set[str] = set()
        # Visits that linked more people than their party size -> how many more.
        self._over_party: dict[str, int] = {}
        self._lost: dict[str, _LostTrack] = {}
        # Entry gate id -> where holders stood at its scanner (map m), learned from scans.
        self._scanner_spots: dict[str, Deque[tuple[float, float]]] = {}
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

    @property
    def unlinked_track_ids(self) -> tuple[str, ...]:
        """Return live shoppers seen in the store with no visit (flagged, never billed)."""
        return tuple(sorted(self._unlinked))

    @property
    def over_party_visit_ids(self) -> tuple[str, ...]:
        """Return open visits that more people walked in on than their token's party."""
        return tuple(sorted(v for v in self._over_party if v in self._visits))

    def scanner_spot(self, gate_id: str) -> Optional[tuple[float, float]]:
        """Return where holders stand at ``gate_id``'s scanner (map m), once learned."""
        spots = self._scanner_spots.get(gate_id, ())
        if self._config.scanner_min_scans == 0 or len(spots) < self._config.scanner_min_scans:
            return None
        return (float(statistics.median(x for x, _ in spots)),
                float(statistics.median(y for _, y in spots)))

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

    def check_in(self, gate_id: str, token: str, stamp_ns: int, now_ns: Optional[int] = None
                 ) -> tuple[CheckInOutcome, list[VisitUpdate]]:
        """Verify a scan at an entry gate and open its visit; return the answer and updates.

        ``stamp_ns`` is the scanner's stamp, ``now_ns`` the gate clock when the scan came
        in (default: the stamp). Expiry, the tracks at the scan and the group window are
        all measured on ``now_ns``.
        """
        now = stamp_ns if now_ns is None else now_ns
        if abs(stamp_ns - now) > self._config.max_scan_offset_ns:
            self._count('scan_clock_offset')
            LOGGER.warning('scan at %s stamped %.1f s from the gate clock; the gate clock is '
                           'used', gate_id, (stamp_ns - now) / NS_PER_SECOND)
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
            verified = self._verifier.verify(token, now)
        except TokenRejected as rejected:
            return self._refuse(gate_id, rejected.reason, str(rejected)), []
        account_id = verified.account_id
        if not self._ledger.account_exists(account_id):
            # Not required to be registered (the verifier checked): register on first visit.
            self._ledger.register_account(account_id, now)
            self._count('accounts_registered')
        candidates = self._tracks_at_scan(gate, now)
        candidates, tailgaters, full_at_scan = self._party_at_scan(
            gate, candidates, verified.party_size)
        try:
            visit_id, created = self._open(account_id, candidates, now, verified, stamp_ns)
        except TokenReplayedError as error:
            return self._refuse(gate_id, RejectReason.REPLAYED, str(error)), []
        except UnknownAccountError:
            # The detail is logged and shown at the gate: a pseudonym, not the account id.
            return self._refuse(gate_id, RejectReason.UNKNOWN_ACCOUNT,
                                f'{account_ref(account_id)} is unknown or inactive'), []
        info = self._ledger.get_visit(visit_id)
        visit = self._visits.get(visit_id)
        if visit is None:
            visit = _OpenVisit(account_id=account_id, gate_id=gate_id,
                               opened_at_ns=info.opened_at_ns,
                               last_seen_ns=max(info.opened_at_ns, now),
                               party_size=verified.party_size)
            self._visits[visit_id] = visit
        for track_id in info.track_ids:
            visit.tracks.add(track_id)
            self._track_visit[track_id] = visit_id
            self._unlinked.discard(track_id)
        if created:
            self._count('visits_opened')
            self._count('tracks_linked', len(visit.tracks))
            visit.full_at_scan = full_at_scan
            for track_id in tailgaters:
                self._flag_tailgater(visit_id, visit, track_id, 'stood aside at the scan')
            self._check_party(visit_id, visit)
            if self._config.group_window_ns > 0:
                self._windows.append(_GroupWindow(
                    visit_id=visit_id, gate=gate, end_ns=now + self._config.group_window_ns))
        else:
            # The same token again while its visit is open: a retried scan gets its visit.
            # No new group window: a replay must not link anyone else to this account.
            self._count('scans_retried')
        outcome = CheckInOutcome(
            gate_id=gate_id, accepted=True, detail=f'welcome: {len(visit.tracks)} linked',
            visit_id=visit_id, account_id=account_id, track_ids=tuple(sorted(visit.tracks)))
        updates = [self._update(visit_id, visit, visit.opened_at_ns, VisitStatus.STARTED,
                                gate_id)]
        if created and self._config.group_window_ns == 0 and not visit.tracks:
            updates.append(self._end_without_tracks(visit_id, visit, now))
        return outcome, updates

    def _open(self, account_id: str, track_ids: Sequence[str], now_ns: int,
              token: VerifiedToken, scan_stamp_ns: int) -> tuple[str, bool]:
        """Open the visit with its tracks; tracks another writer linked meanwhile are skipped."""
        try:
            return self._ledger.open_visit_for_scan(
                account_id, track_ids, now_ns, token.token_id, token.expires_at_ns,
                scan_stamp_ns)
        except (TokenReplayedError, UnknownAccountError):
            raise
        except LedgerError as error:
            if not track_ids:
                raise
            LOGGER.warning('opening the visit with tracks %s failed (%s); linking one by one',
                           list(track_ids), error)
        visit_id, created = self._ledger.open_visit_for_scan(
            account_id, (), now_ns, token.token_id, token.expires_at_ns, scan_stamp_ns)
        for track_id in track_ids:
            if self._ledger.visit_for_track(track_id) is None:
                self._ledger.add_track(visit_id, track_id, now_ns)
        return visit_id, created

    def _tracks_at_scan(self, gate: Gate, now_ns: int) -> list[str]:
        """Return the unlinked shoppers at the scan.

        Those in the gate zone in the latest (fresh) snapshot, and live ones seen in it
        within ``scan_lookback_ns`` before the scan (the scanner's report comes late).
        """
        if self._snapshot_now_ns is None or \
                self._snapshot_now_ns < now_ns - SNAPSHOT_MAX_AGE_NS:
            return []
        since_ns = now_ns - self._config.scan_lookback_ns
        return sorted(track_id for track_id, state in self._live.items()
                      if self._linkable(track_id, state, gate)
                      or self._linkable(track_id, state, gate, since_ns))

    def _linkable(self, track_id: str, state: _TrackState, gate: Gate,
                  since_ns: Optional[int] = None) -> bool:
        """Whether an unlinked shopper stands in ``gate`` (or stood there since ``since_ns``)."""
        if state.is_associate or self._track_visit.get(track_id) is not None:
            return False
        margin_m = self._config.entry_margin_m
        if since_ns is None:
            return _distance_to_zone(gate, state.x_m, state.y_m) <= margin_m
        return any(stamp_ns >= since_ns and _distance_to_zone(gate, x_m, y_m) <= margin_m
                   for stamp_ns, x_m, y_m in state.history)

    def _party_at_scan(self, gate: Gate, candidates: list[str], party_size: int
                       ) -> tuple[list[str], list[str], bool]:
        """Split the people at a scan into its party and tailgaters; learn the scanner spot.

        Returns the party, the tailgaters and whether the whole party stood at the scan.
        With more people at the scan than a party of one, the holder (nearest the learned
        scanner spot, by a margin) is the party and the others are tailgaters. Anything
        less clear (a larger party: which of the others came with the holder?) links
        everyone, and ``_check_party`` sends the visit to review.
        """
        if not party_size:
            return candidates, [], False
        if party_size == 1 and len(candidates) == 1:
            state = self._live[candidates[0]]
            spots = self._scanner_spots.setdefault(
                gate.gate_id, deque(maxlen=max(1, self._config.scanner_samples)))
            spots.append((state.x_m, state.y_m))
        if len(candidates) <= party_size:
            return candidates, [], len(candidates) == party_size
        holder = self._holder(gate, candidates) if party_size == 1 else None
        if holder is None:
            return candidates, [], False
        return [holder], [c for c in candidates if c != holder], True

    def _holder(self, gate: Gate, candidates: Sequence[str]) -> Optional[str]:
        """Return the one track clearly standing at ``gate``'s scanner, or None."""
        spot = self.scanner_spot(gate.gate_id)
        if spot is None:
            return None
        ranked = sorted((math.hypot(self._live[t].x_m - spot[0], self._live[t].y_m - spot[1]),
                         t) for t in candidates)
        (nearest_m, holder), (second_m, _) = ranked[0], ranked[1]
        if nearest_m > self._config.holder_max_distance_m or \
                second_m - nearest_m < self._config.holder_margin_m:
            return None
        return holder

    def _flag_tailgater(self, visit_id: str, visit: _OpenVisit, track_id: str,
                        why: str) -> None:
        """Leave a track that walked in over a visit's party unlinked, and flag it."""
        visit.tailgaters.add(track_id)
        self._unlinked.add(track_id)
        self._count('tailgaters_flagged')
        self._count('tailgaters_unlinked')
        LOGGER.warning('visit %s (%s): track %s walked in over its party of %d (%s): a '
                       'tailgater, flagged and linked to no visit', visit_id,
                       account_ref(visit.account_id), track_id, visit.party_size, why)

    def _check_party(self, visit_id: str, visit: _OpenVisit) -> None:
        """Flag a visit into review once more people walked in on it than its party."""
        extra = visit.over_party()
        if extra <= self._over_party.get(visit_id, 0):
            return
        self._count('tailgaters_flagged', extra - self._over_party.get(visit_id, 0))
        self._over_party[visit_id] = extra
        visit.review_reason = (f'tailgater: {len(visit.tracks - visit.retired)} people '
                               f'walked in on a party of {visit.party_size}')
        LOGGER.warning('visit %s (%s): %d people walked in on a party of %d: a tailgater; '
                       'the receipt waits for staff', visit_id, account_ref(visit.account_id),
                       len(visit.tracks - visit.retired), visit.party_size)

    # -- tracks ---------------------------------------------------------------------------

    def on_tracks(self, stamp_ns: int, tracks: Iterable[TrackObservation],
                  now_ns: Optional[int] = None, missed_before: bool = False
                  ) -> list[VisitUpdate]:
        """Take one snapshot of every live track; link group members, detect exits.

        ``stamp_ns`` is the tracker's stamp, ``now_ns`` the gate clock when the snapshot
        came in (default: the stamp). A snapshot stamped more than ``future_tolerance_ns``
        ahead of ``now_ns`` is refused; one older than the last accepted is dropped.
        ``missed_before``: snapshots before this one were lost (the caller's queue was
        full), so a track that disappeared may have been seen in an exit zone in them.
        """
        now = stamp_ns if now_ns is None else now_ns
        if stamp_ns > now + self._config.future_tolerance_ns:
            self._count('refused_future_tracks')
            LOGGER.warning('refused a track snapshot stamped %.1f s ahead of the gate clock',
                           (stamp_ns - now) / NS_PER_SECOND)
            return []
        if self._snapshot_stamp_ns is not None and stamp_ns < self._snapshot_stamp_ns:
            self._count('dropped_out_of_order_tracks')
            return []
        if self._snapshot_now_ns is not None:
            now = max(now, self._snapshot_now_ns)  # gate time never runs backwards here
        snapshot = {track.track_id: track for track in tracks}
        changed: set[str] = set()
        for track_id in snapshot.keys() - self._live.keys():
            self._learn(track_id, snapshot)
        for track_id in self._live.keys() - snapshot.keys():
            changed |= self._disappeared(track_id, now, missed_before)
        for track in snapshot.values():
            changed |= self._observe(track, now)
        self._snapshot_stamp_ns = stamp_ns
        self._snapshot_now_ns = now
        updates = self._link_group_members(now)
        updates += self._rejoin_or_flag(snapshot, now)
        for visit_id in list(self._visits):
            visit = self._visits[visit_id]
            if visit_id in changed and visit.all_left():
                visit.ended_at_ns = visit.ended_at_ns or now
            elif visit.ended_at_ns is None:
                self._end_if_lost(visit_id, visit, now)
            if visit.ended_at_ns is not None:
                updates.append(self._end(visit_id, visit))
        return updates

    def on_clock(self, now_ns: int) -> list[VisitUpdate]:
        """End visits lost for too long when no track snapshot comes (gate clock ``now_ns``).

        Snapshots drive everything else; with none arriving (the tracker stopped, or a
        replay's tail after the last camera frame) visits whose people are gone must still
        end into review. Does nothing before the first snapshot.
        """
        if self._snapshot_now_ns is None:
            return []
        now = max(now_ns, self._snapshot_now_ns)
        updates = []
        for visit_id in list(self._visits):
            visit = self._visits[visit_id]
            if visit.ended_at_ns is None:
                self._end_if_lost(visit_id, visit, now)
            if visit.ended_at_ns is not None:
                updates.append(self._end(visit_id, visit))
        return updates

    def _end_if_lost(self, visit_id: str, visit: _OpenVisit, now_ns: int) -> None:
        """End a visit into review when none of its people was seen for too long.

        Too long is ``visit_lost_after_ns``, or ``party_left_after_ns`` once one of them
        was seen leaving by an exit.
        """
        wait_ns = (self._config.party_left_after_ns if visit.left
                   else self._config.visit_lost_after_ns)
        if any(track_id in self._live for track_id in visit.tracks) or \
                now_ns - visit.last_seen_ns <= wait_ns:
            return
        if any(w.visit_id == visit_id for w in self._windows):
            return  # still collecting its group
        present = visit.tracks - visit.retired
        missing = sorted(present - visit.left.keys())
        visit.ended_at_ns = visit.last_seen_ns
        lost = f'visit_lost: {len(missing)} of {len(present)} people not seen leaving'
        visit.review_reason = '; '.join(r for r in (visit.review_reason, lost) if r)
        self._count('visits_lost_to_review')
        LOGGER.warning('visit %s: nobody seen for %.0f s and tracks %s not seen leaving: '
                       'ended into review (the receipt waits for staff)', visit_id,
                       (now_ns - visit.last_seen_ns) / NS_PER_SECOND, missing)

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

    def _observe(self, track: TrackObservation, now_ns: int) -> set[str]:
        """Update a live track; return the visit whose exit state may have changed."""
        state = self._live.get(track.track_id)
        if state is None:
            state = self._live[track.track_id] = _TrackState(
                track.x_m, track.y_m, track.is_associate,
                deque(maxlen=self._config.track_history_length))
        state.x_m, state.y_m, state.is_associate = track.x_m, track.y_m, track.is_associate
        state.history.append((now_ns, track.x_m, track.y_m))
        self._lost.pop(track.track_id, None)
        visit_id = self._track_visit.get(track.track_id)
        visit = self._visits.get(visit_id) if visit_id else None
        if visit is not None:
            visit.last_seen_ns = max(visit.last_seen_ns, now_ns)
        inside = 0.0 <= track.x_m <= self._width_m and 0.0 <= track.y_m <= self._depth_m
        # A coasting track's position is the tracker's prediction: it may carry a track
        # into a door zone, but not out of the zone it was last seen in (a prediction
        # drifts on past the person who stopped there and left).
        coasting = track.seen_ns is not None and track.seen_ns == state.seen_ns
        state.seen_ns = track.seen_ns
        if inside:
            margin_m = self._config.exit_margin_m
            door = next((gate.gate_id for gate in self._doors
                         if _distance_to_zone(gate, track.x_m, track.y_m) <= margin_m), None)
            if door is not None or not coasting:
                state.exit_gate = door
            if visit is not None and visit.left.pop(track.track_id, None) is not None:
                self._count('tracks_returned')
            return set()
        if visit is not None and state.exit_gate is not None:
            assert visit_id is not None
            self._left(visit_id, visit, track.track_id, state.exit_gate)
            return {visit_id}
        return set()

    def _left(self, visit_id: str, visit: _OpenVisit, track_id: str, gate_id: str) -> None:
        """Record that a visit's track left by ``gate_id``; a staff door means review."""
        visit.left[track_id] = gate_id
        if gate_id not in self._staff_doors:
            return
        reason = f'left_by_staff_door: track {track_id} left by {gate_id}'
        if reason in visit.review_reason:
            return
        visit.review_reason = '; '.join(r for r in (visit.review_reason, reason) if r)
        self._count('left_by_staff_door')
        LOGGER.warning('visit %s: its shopper track %s left by the staff door %s: the visit '
                       'ends into review (the receipt waits for staff)', visit_id, track_id,
                       gate_id)

    def _disappeared(self, track_id: str, now_ns: int, missed_before: bool = False
                     ) -> set[str]:
        """Forget a track that is no longer live; it left if last seen in an exit zone."""
        state = self._live.pop(track_id)
        self._unlinked.discard(track_id)
        visit_id = self._track_visit.get(track_id)
        visit = self._visits.get(visit_id) if visit_id else None
        if visit is None or visit_id is None:
            self._track_visit.pop(track_id, None)  # ids are never reused: nothing to keep
            return set()
        exit_gate = state.exit_gate or self._exit_across_gap(state, now_ns, missed_before)
        if exit_gate is not None:
            self._left(visit_id, visit, track_id, exit_gate)
            return {visit_id}
        if track_id not in visit.left:
            LOGGER.warning('track %s of visit %s disappeared inside the store (not in an '
                           'exit zone); it may rejoin under a new id, else the visit ends '
                           'into review', track_id, visit_id)
            self._count('tracks_lost')
            self._lost[track_id] = _LostTrack(visit_id, state.last_seen_ns, state.x_m,
                                              state.y_m)
        return set()

    def _exit_across_gap(self, state: _TrackState, now_ns: int, missed_before: bool = False
                         ) -> Optional[str]:
        """Return the exit zone a track could have walked into during missed snapshots.

        Only when snapshots are missing (the gap from its last sighting to now exceeds
        ``max_snapshot_gap_ns``, or the caller dropped some: ``missed_before``): then the
        nearest exit zone within walking reach (and within ``exit_approach_m``) of its last
        position, which its kept history moves towards, counts as its exit. Dropped
        snapshots say nothing of how long they spanned: the reach is ``exit_approach_m``.
        """
        if not state.history:
            return None
        last_ns, x_m, y_m = state.history[-1]
        gap_ns = now_ns - last_ns
        if gap_ns <= self._config.max_snapshot_gap_ns and not missed_before:
            return None
        reach_m = self._config.exit_approach_m
        if not missed_before:
            reach_m = min(self._config.walking_speed_mps * gap_ns / NS_PER_SECOND, reach_m)
        first_ns, x0_m, y0_m = state.history[0]
        best: Optional[tuple[float, str]] = None
        for gate in self._exit:
            distance_m = _distance_to_zone(gate, x_m, y_m)
            if distance_m > reach_m:
                continue
            if len(state.history) > 1 and _distance_to_zone(gate, x0_m, y0_m) < distance_m:
                continue  # moving away from this exit
            if best is None or distance_m < best[0]:
                best = (distance_m, gate.gate_id)
        if best is None:
            return None
        self._count('exits_inferred_after_gap')
        LOGGER.warning('track last seen %.1f m from exit %s %.1f s ago: counted as left there',
                       best[0], best[1], gap_ns / NS_PER_SECOND)
        return best[1]

    def _rejoin_or_flag(self, snapshot: dict[str, TrackObservation], now_ns: int
                        ) -> list[VisitUpdate]:
        """Give a visit back its lost person, or flag a shopper in the store with no visit.

        A shopper track with no visit, in the store outside the entry zones, rejoins the
        visit of the nearest lost track it could have walked from (within
        ``visit_lost_after_ns`` and ``walking_speed_mps`` x gap + ``rejoin_margin_m``);
        otherwise it is flagged: nobody is billed for it.
        """
        updates: list[VisitUpdate] = []
        for track_id, track in sorted(snapshot.items()):
            if track.is_associate or track_id in self._unlinked \
                    or self._track_visit.get(track_id) is not None:
                continue
            inside = 0.0 <= track.x_m <= self._width_m and 0.0 <= track.y_m <= self._depth_m
            if not inside or any(g.contains(track.x_m, track.y_m) for g in self._entry.values()):
                continue
            update = self._rejoin(track_id, track, now_ns)
            if update is not None:
                updates.append(update)
                continue
            self._unlinked.add(track_id)
            self._count('unlinked_shoppers')
            LOGGER.warning('track %s walks in the store linked to no check-in: flagged, '
                           'nobody is billed for it', track_id)
        return updates

    def _rejoin(self, track_id: str, track: TrackObservation, now_ns: int
                ) -> Optional[VisitUpdate]:
        """Link a new track to the visit of a lost track it continues; None if none fits."""
        best: Optional[tuple[float, str]] = None
        for lost_id, lost in self._lost.items():
            gap_ns = now_ns - lost.last_seen_ns
            if lost.visit_id not in self._visits or gap_ns > self._config.visit_lost_after_ns:
                continue
            reach_m = (self._config.walking_speed_mps * max(gap_ns, 0) / NS_PER_SECOND
                       + self._config.rejoin_margin_m)
            distance_m = math.hypot(track.x_m - lost.x_m, track.y_m - lost.y_m)
            if distance_m <= reach_m and (best is None or distance_m < best[0]):
                best = (distance_m, lost_id)
        if best is None:
            return None
        lost_id = best[1]
        lost = self._lost.pop(lost_id)
        visit = self._visits[lost.visit_id]
        if self._ledger.visit_for_track(track_id) is None:
            self._ledger.add_track(lost.visit_id, track_id, now_ns)
        self._track_visit[track_id] = lost.visit_id
        visit.tracks.add(track_id)
        visit.retired.add(lost_id)
        visit.last_seen_ns = max(visit.last_seen_ns, now_ns)
        self._count('tracks_rejoined')
        LOGGER.info('track %s rejoins visit %s: it appeared %.1f m from lost track %s',
                    track_id, lost.visit_id, best[0], lost_id)
        return self._update(lost.visit_id, visit, visit.opened_at_ns, VisitStatus.STARTED,
                            visit.gate_id)

    def _end_without_tracks(self, visit_id: str, visit: _OpenVisit, now_ns: int
                            ) -> VisitUpdate:
        """End a visit whose group window closed with no track (it could never end)."""
        LOGGER.warning('visit %s linked no track during its group window: ended', visit_id)
        self._count('visits_ended_without_tracks')
        visit.ended_at_ns = now_ns
        return self._end(visit_id, visit)

    def _link_group_members(self, now_ns: int) -> list[VisitUpdate]:
        """Link unlinked shoppers in the zone of a scan whose group window is open."""
        closed = [w for w in self._windows
                  if w.end_ns < now_ns and w.visit_id in self._visits]
        self._windows = [w for w in self._windows
                         if w.end_ns >= now_ns and w.visit_id in self._visits]
        updates = [self._end_without_tracks(w.visit_id, self._visits[w.visit_id], now_ns)
                   for w in closed if not self._visits[w.visit_id].tracks
                   and not any(o.visit_id == w.visit_id for o in self._windows)]
        for window in sorted(self._windows, key=lambda w: -w.end_ns):  # latest scan first
            visit = self._visits[window.visit_id]
            added = []
            for track_id, state in sorted(self._live.items()):
                if track_id in visit.tailgaters or \
                        not self._linkable(track_id, state, window.gate):
                    continue
                if self._ledger.visit_for_track(track_id) is not None:
                    continue  # linked by another gate process meanwhile
                if self._party_complete(window.visit_id, visit):
                    self._flag_tailgater(window.visit_id, visit, track_id,
                                         'walked in after the scan')
                    continue
                self._ledger.add_track(window.visit_id, track_id, now_ns)
                self._track_visit[track_id] = window.visit_id
                self._unlinked.discard(track_id)
                visit.tracks.add(track_id)
                added.append(track_id)
            if added:
                self._count('tracks_linked', len(added))
                self._check_party(window.visit_id, visit)
                updates.append(self._update(window.visit_id, visit, visit.opened_at_ns,
                                            VisitStatus.STARTED, window.gate.gate_id))
        return updates

    def _party_complete(self, visit_id: str, visit: _OpenVisit) -> bool:
        """Whether a visit whose whole party stood at its scan still has all of them.

        A member lost meanwhile may come back under a new track: then nobody is taken
        for a tailgater (the visit goes to review if it ends up over its party).
        """
        return (visit.full_at_scan and bool(visit.party_size)
                and len(visit.tracks - visit.retired) >= visit.party_size
                and not any(lost.visit_id == visit_id for lost in self._lost.values()))

    def _end(self, visit_id: str, visit: _OpenVisit) -> VisitUpdate:
        """Record the exit in the ledger, forget the visit and report it ended."""
        assert visit.ended_at_ns is not None
        self._ledger.mark_exit(visit_id, visit.ended_at_ns, review_reason=visit.review_reason)
        del self._visits[visit_id]
        self._over_party.pop(visit_id, None)
        for track_id in visit.tracks:
            self._lost.pop(track_id, None)
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


def _distance_to_zone(gate: Gate, x_m: float, y_m: float) -> float:
    """Return the distance in m from a floor point to a gate rectangle (0 inside)."""
    dx = max(gate.min_m[0] - x_m, 0.0, x_m - gate.max_m[0])
    dy = max(gate.min_m[1] - y_m, 0.0, y_m - gate.max_m[1])
    return math.hypot(dx, dy)
