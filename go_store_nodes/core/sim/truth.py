"""Ground truth of a simulated run and its JSON form (``truth.json``, docs/simulation.md).

Standard library only, so the evaluation can read truth without numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import json
import pathlib
from typing import Any, Optional

TRUTH_FORMAT = 1
EVENT_KINDS = ('pick', 'return', 'hand_off', 'restock')
ROLES = ('shopper', 'associate')


@dataclass(frozen=True)
class TruthPerson:
    """Who took part: role, account (shoppers), party, stature, when in the store."""

    person_id: int
    role: str
    account_id: Optional[str]
    party_id: Optional[int]
    height_m: float
    enter_ns: int
    exit_ns: Optional[int]


@dataclass(frozen=True)
class TruthFramePerson:
    """One person in one camera frame: floor position of the pelvis and all joints (m)."""

    person_id: int
    x_m: float
    y_m: float
    joints: dict[str, list[float]]


@dataclass(frozen=True)
class TruthFrame:
    """Everyone in the store at one camera frame."""

    stamp_ns: int
    people: tuple[TruthFramePerson, ...]


@dataclass(frozen=True)
class TruthEvent:
    """A pick, return, hand-off or restock.

    ``start_ns``/``end_ns`` bound the hand's contact (in the bin, or hand to hand);
    ``stamp_ns`` is the moment the item changes place (the weight steps then).
    """

    event_id: str
    kind: str
    stamp_ns: int
    start_ns: int
    end_ns: int
    person_id: int
    to_person_id: Optional[int]
    account_id: Optional[str]
    sku: str
    quantity: int
    bin_id: Optional[str]
    shelf_id: Optional[str]
    delta_grams: float
    behaviours: tuple[str, ...] = ()


@dataclass(frozen=True)
class TruthTouch:
    """A hand in a bin that takes nothing: a press, or a unit lifted and put straight back.

    Never a pick or return (no receipt line, no shelf or cart event is expected), so it is
    kept apart from ``events``. ``start_ns``/``end_ns`` bound the hand's contact with the
    bin, ``stamp_ns`` is its middle; ``lifted_grams`` is the true weight of the unit lifted
    off the plate and put back (0 for a press only). The settled weight does not change.
    """

    touch_id: str
    stamp_ns: int
    start_ns: int
    end_ns: int
    person_id: int
    account_id: Optional[str]
    sku: str
    bin_id: str
    shelf_id: str
    lifted_grams: float


@dataclass(frozen=True)
class TruthCheckIn:
    """One QR scan at a gate, and the people who came in on it.

    ``tailgater_ids`` walked in right behind this scan without one of their own: they
    have no account and are not in ``person_ids``.
    """

    stamp_ns: int
    gate_id: str
    account_id: str
    person_ids: tuple[int, ...]
    tailgater_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class TruthReceiptLine:
    """One line of a receipt."""

    sku: str
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class TruthReceipt:
    """What an account really leaves with: picks minus returns, priced from the catalog."""

    account_id: str
    lines: tuple[TruthReceiptLine, ...]
    total_cents: int


@dataclass(frozen=True)
class TruthEpisode:
    """A hard behaviour that is no item event: group entry, shared reach, tangled, tailgating."""

    behaviour: str
    start_ns: int
    end_ns: int
    person_ids: tuple[int, ...]


@dataclass(frozen=True)
class TruthCameraOutage:
    """A camera that delivered no frames from ``start_ns`` to ``end_ns`` (true time)."""

    camera_id: str
    start_ns: int
    end_ns: int


@dataclass(frozen=True)
class TruthCameraClock:
    """How a camera's header stamps relate to true time (docs/simulation.md).

    ``stamp = capture + offset_ns + drift_ppm * 1e-6 * (capture - Truth.start_ns)``;
    frames arrive about ``latency_ns`` after capture; the camera captures on world steps
    ``phase_steps`` after the truth frames' steps.
    """

    camera_id: str
    offset_ns: int
    drift_ppm: float
    latency_ns: int
    phase_steps: int


@dataclass(frozen=True)
class Truth:
    """Everything that really happened in a simulated run."""

    scenario: str
    seed: int
    store: str
    start_ns: int
    end_ns: int
    frame_period_ns: int
    people: tuple[TruthPerson, ...] = ()
    frames: tuple[TruthFrame, ...] = ()
    events: tuple[TruthEvent, ...] = ()
    check_ins: tuple[TruthCheckIn, ...] = ()
    receipts: tuple[TruthReceipt, ...] = ()
    behaviour_counts: dict[str, int] = field(default_factory=dict)
    episodes: tuple[TruthEpisode, ...] = ()
    sensor_counts: dict[str, int] = field(default_factory=dict)
    camera_outages: tuple[TruthCameraOutage, ...] = ()
    camera_clocks: tuple[TruthCameraClock, ...] = ()
    touches: tuple[TruthTouch, ...] = ()
    format: int = TRUTH_FORMAT

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON document as plain dicts and lists (docs/simulation.md)."""
        document: dict[str, Any] = {
            'format': self.format, 'scenario': self.scenario, 'seed': self.seed,
            'store': self.store, 'start_ns': self.start_ns, 'end_ns': self.end_ns,
            'frame_period_ns': self.frame_period_ns,
            'people': [asdict(p) for p in self.people],
            'frames': [{'stamp_ns': f.stamp_ns,
                        'people': [{'person_id': p.person_id, 'x_m': p.x_m, 'y_m': p.y_m,
                                    'joints': p.joints} for p in f.people]}
                       for f in self.frames],
            'events': [dict(asdict(e), behaviours=list(e.behaviours)) for e in self.events],
            'check_ins': [dict(asdict(c), person_ids=list(c.person_ids),
                               tailgater_ids=list(c.tailgater_ids)) for c in self.check_ins],
            'receipts': [{'account_id': r.account_id,
                          'lines': [asdict(line) for line in r.lines],
                          'total_cents': r.total_cents} for r in self.receipts],
            'behaviour_counts': dict(self.behaviour_counts),
            'episodes': [dict(asdict(e), person_ids=list(e.person_ids))
                         for e in self.episodes],
            'sensor_counts': dict(self.sensor_counts),
            'camera_outages': [asdict(o) for o in self.camera_outages],
            'camera_clocks': [asdict(c) for c in self.camera_clocks],
            'touches': [asdict(t) for t in self.touches],
        }
        return document

    def to_json(self, indent: Optional[int] = None) -> str:
        """Return truth.json text (compact unless ``indent`` is given)."""
        separators = (',', ':') if indent is None else (',', ': ')
        return json.dumps(self.to_dict(), indent=indent, separators=separators)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Truth:
        """Build from a parsed truth.json document; raise ValueError if it is malformed.

        The one reader of the format: the evaluation builds its ground truth from this.
        Keys that older or hand-written documents may lack take the defaults of
        ``OPTIONAL_KEYS``; every other key is required.
        """
        try:
            if document.get('format') != TRUTH_FORMAT:
                raise ValueError(f'format: expected {TRUTH_FORMAT}, '
                                 f'got {document.get("format")!r}')
            document = _with_defaults('truth', document)
            return cls(
                format=int(document['format']), scenario=str(document['scenario']),
                seed=int(document['seed']), store=str(document['store']),
                start_ns=int(document['start_ns']), end_ns=int(document['end_ns']),
                frame_period_ns=int(document['frame_period_ns']),
                people=tuple(TruthPerson(**_with_defaults('person', p))
                             for p in document['people']),
                frames=tuple(TruthFrame(
                    int(f['stamp_ns']),
                    tuple(TruthFramePerson(int(p['person_id']), float(p['x_m']),
                                           float(p['y_m']),
                                           {k: list(v)
                                            for k, v in p.get('joints', {}).items()})
                          for p in f['people'])) for f in document['frames']),
                events=tuple(TruthEvent(**dict(_with_defaults('event', e),
                                               behaviours=tuple(e.get('behaviours', ()))))
                             for e in document['events']),
                check_ins=tuple(TruthCheckIn(**dict(
                    c, person_ids=tuple(c['person_ids']),
                    tailgater_ids=tuple(c.get('tailgater_ids', ()))))
                    for c in document['check_ins']),
                receipts=tuple(_receipt_from_dict(r) for r in document['receipts']),
                behaviour_counts={str(k): int(v)
                                  for k, v in document['behaviour_counts'].items()},
                episodes=tuple(TruthEpisode(**dict(e, person_ids=tuple(e['person_ids'])))
                               for e in document.get('episodes', ())),
                sensor_counts={str(k): int(v)
                               for k, v in document.get('sensor_counts', {}).items()},
                camera_outages=tuple(TruthCameraOutage(**o)
                                     for o in document.get('camera_outages', ())),
                camera_clocks=tuple(TruthCameraClock(**c)
                                    for c in document.get('camera_clocks', ())),
                touches=tuple(TruthTouch(**t) for t in document.get('touches', ())))
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f'malformed truth document: {error!r}') from None

    @classmethod
    def from_json(cls, text: str) -> Truth:
        """Parse truth.json text."""
        return cls.from_dict(json.loads(text))

    def save(self, path: str | pathlib.Path) -> None:
        """Write truth.json."""
        pathlib.Path(path).write_text(self.to_json() + '\n')

    @classmethod
    def load(cls, path: str | pathlib.Path) -> Truth:
        """Read truth.json."""
        return cls.from_json(pathlib.Path(path).read_text())

    def receipt(self, account_id: str) -> TruthReceipt:
        """Return the receipt of an account, or raise KeyError."""
        for receipt in self.receipts:
            if receipt.account_id == account_id:
                return receipt
        raise KeyError(f'no receipt for account {account_id!r}')


def compute_receipts(events: tuple[TruthEvent, ...] | list[TruthEvent],
                     accounts: list[str], prices_cents: dict[str, int]
                     ) -> tuple[TruthReceipt, ...]:
    """Receipts of every account: its picks minus its returns, priced from the catalog."""
    quantities: dict[str, dict[str, int]] = {account: {} for account in accounts}
    for event in events:
        if event.account_id is None or event.kind not in ('pick', 'return'):
            continue
        lines = quantities.setdefault(event.account_id, {})
        sign = 1 if event.kind == 'pick' else -1
        lines[event.sku] = lines.get(event.sku, 0) + sign * event.quantity
    receipts = []
    for account in sorted(quantities):
        receipt_lines = tuple(
            TruthReceiptLine(sku, quantity, prices_cents[sku])
            for sku, quantity in sorted(quantities[account].items()) if quantity)
        if any(line.quantity < 0 for line in receipt_lines):
            raise ValueError(f'account {account}: returned more than it picked')
        receipts.append(TruthReceipt(account, receipt_lines, sum(
            line.quantity * line.unit_price_cents for line in receipt_lines)))
    return tuple(receipts)


# Keys a truth.json document may lack (older simulators, hand-written test documents),
# per record kind, with the value they then take. Lists that only newer simulators write
# (episodes, sensor_counts, camera_outages, camera_clocks, touches, behaviours,
# tailgater_ids) default to empty where they are read.
OPTIONAL_KEYS: dict[str, dict[str, Any]] = {
    'truth': {'store': '', 'check_ins': (), 'behaviour_counts': {}},
    'person': {'account_id': None, 'party_id': None, 'height_m': 0.0, 'exit_ns': None},
    'event': {'to_person_id': None, 'account_id': None, 'bin_id': None, 'shelf_id': None,
              'delta_grams': 0.0},
    'receipt_line': {'unit_price_cents': 0},
}


def _with_defaults(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """Return ``record`` with the optional keys of its kind filled in where missing."""
    return {**OPTIONAL_KEYS[kind], **record}


def _receipt_from_dict(record: dict[str, Any]) -> TruthReceipt:
    """Read one receipt; a missing ``total_cents`` is the sum of its lines."""
    lines = tuple(TruthReceiptLine(**_with_defaults('receipt_line', line))
                  for line in record['lines'])
    total = record.get('total_cents')
    return TruthReceipt(str(record['account_id']), lines,
                        sum(line.quantity * line.unit_price_cents for line in lines)
                        if total is None else int(total))
