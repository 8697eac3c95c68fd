"""Plain data the evaluation compares: ground truth (truth.json) and the graph's outputs.

Both sides are built at the edge (truth.json read by ``core.sim.truth.Truth.from_dict``,
the one definition of its format, and reduced here to what the metrics compare; bag
messages converted by go_store_nodes.bagio.predictions) so that the metrics never see a
ROS message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..sim.truth import Truth, TRUTH_FORMAT  # noqa: F401 - format read, re-exported
from ..topics import (  # noqa: F401 - output topics the metrics read, re-exported
    CALIBRATION_STATUS_TOPIC,
    CART_EVENTS_TOPIC,
    CHECK_IN_RESULT_TOPIC,
    DETECTIONS_TOPIC,
    RECEIPTS_TOPIC,
    SHELF_EVENTS_TOPIC,
    SKELETONS_TOPIC,
    TRACKS_TOPIC,
    VISITS_TOPIC,
)

# Event ids of the truth-fed test harness (go_store_testing.truth_feed) start with this:
# output carrying them was made from ground truth, not measured, and is refused.
TRUTH_FEED_EVENT_PREFIX = 'truth-feed-'


class TruthFormatError(ValueError):
    """truth.json is not in a format this evaluation reads."""


class TruthDerivedOutputError(ValueError):
    """The output to evaluate carries ids that only ground truth could have produced."""


@dataclass(frozen=True)
class TruthPerson:
    """One simulated person."""

    person_id: int
    role: str                      # 'shopper' or 'associate'
    account_id: str                # '' for associates
    party_id: int
    enter_ns: int
    exit_ns: int


@dataclass(frozen=True)
class TruthEvent:
    """One thing that happened to an item: pick, return, hand_off or restock."""

    event_id: str
    kind: str
    stamp_ns: int
    start_ns: int
    end_ns: int
    person_id: int
    account_id: str
    sku: str
    quantity: int
    bin_id: str
    shelf_id: str

    @property
    def settle_ns(self) -> int:
        """When the shelf weight settles again (end of the interaction)."""
        return self.end_ns or self.stamp_ns


@dataclass(frozen=True)
class TruthTouch:
    """A hand in a bin that took nothing (a press, or a unit lifted and put back).

    Never expected as a shelf event or a cart line; a shelf event on its bin near it is a
    false detection caused by the touch.
    """

    touch_id: str
    bin_id: str
    start_ns: int
    end_ns: int
    person_id: int = 0


@dataclass(frozen=True)
class TruthFrame:
    """Where everyone in the store stood at one camera frame: (person_id, x_m, y_m)."""

    stamp_ns: int
    positions: tuple[tuple[int, float, float], ...]


@dataclass(frozen=True)
class GroundTruth:
    """What truth.json says happened."""

    scenario: str
    seed: int
    start_ns: int
    end_ns: int
    frame_period_ns: int
    people: tuple[TruthPerson, ...]
    frames: tuple[TruthFrame, ...]
    events: tuple[TruthEvent, ...]
    receipts: Mapping[str, Mapping[str, int]]      # account -> sku -> quantity
    check_in_count: int = 0
    touches: tuple[TruthTouch, ...] = ()
    store: str = ''                                 # name of the store description

    def shopper_accounts(self) -> list[str]:
        """Every account that shopped: has a receipt or a shopper, sorted."""
        accounts = set(self.receipts)
        accounts.update(p.account_id for p in self.people
                        if p.role == 'shopper' and p.account_id)
        return sorted(accounts)

    def exit_ns(self, account_id: str) -> int | None:
        """When the last person of an account's party left (None if unknown)."""
        exits = [p.exit_ns for p in self.people if p.account_id == account_id and p.exit_ns]
        return max(exits) if exits else None


@dataclass(frozen=True)
class PredictedReceipt:
    """A go_store/Receipt: issued, or held for review."""

    received_ns: int
    stamp_ns: int
    visit_id: str
    account_id: str
    issued: bool
    lines: Mapping[str, int]
    total_cents: int = 0


@dataclass(frozen=True)
class PredictedCartEvent:
    """A go_store/CartEvent."""

    received_ns: int
    stamp_ns: int
    event_id: str
    visit_id: str
    account_id: str
    track_id: int
    sku: str
    quantity_delta: int
    evidence_ids: tuple[str, ...] = ()
    needs_review: bool = False


@dataclass(frozen=True)
class PredictedShelfEvent:
    """A go_store/ShelfEvent; ``kind`` is 'pick', 'return' or 'unknown'."""

    received_ns: int
    stamp_ns: int
    event_id: str
    shelf_id: str
    bin_id: str
    kind: str
    delta_grams: float = 0.0
    candidates: tuple[tuple[str, int, float], ...] = ()   # (sku, quantity, likelihood)


@dataclass(frozen=True)
class PredictedTrackFrame:
    """A go_store/TrackArray: (track_id, x_m, y_m) of every live track.

    ``roles`` holds each track's role ('shopper', 'associate' or 'unknown') in the order
    of ``tracks``; empty when the tracker gives no roles.
    """

    stamp_ns: int
    tracks: tuple[tuple[int, float, float], ...]
    roles: tuple[str, ...] = ()

    def role_of(self, track_id: int) -> str:
        """Return the role of ``track_id`` in this frame ('' when not given)."""
        for (tid, _, _), role in zip(self.tracks, self.roles, strict=False):
            if tid == track_id:
                return role
        return ''


@dataclass(frozen=True)
class PredictedDetectionFrame:
    """A go_store/PersonDetectionArray: the floor point (x_m, y_m) of every detection."""

    stamp_ns: int
    positions: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class PredictedSkeletonFrame:
    """A go_store/SkeletonArray: (track_id, side, bin_id) of every hand in a bin."""

    stamp_ns: int
    hands: tuple[tuple[int, str, str], ...]


@dataclass(frozen=True)
class PredictedVisit:
    """A go_store/Visit; ``started`` false means ended."""

    received_ns: int
    stamp_ns: int
    visit_id: str
    account_id: str
    started: bool
    track_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Predictions:
    """Everything the graph published during a replay, plus how many of each topic."""

    topic_counts: Mapping[str, int]
    receipts: tuple[PredictedReceipt, ...] = ()
    cart_events: tuple[PredictedCartEvent, ...] = ()
    shelf_events: tuple[PredictedShelfEvent, ...] = ()
    track_frames: tuple[PredictedTrackFrame, ...] = ()
    visits: tuple[PredictedVisit, ...] = ()
    check_ins_accepted: int = 0
    check_ins_refused: int = 0
    real_time_factor: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    skeleton_frames: tuple[PredictedSkeletonFrame, ...] = ()
    detection_frames: tuple[PredictedDetectionFrame, ...] = ()

    def count(self, topic: str) -> int:
        """Messages recorded on ``topic`` (0 when none)."""
        return int(self.topic_counts.get(topic, 0))


def parse_truth(document: Mapping[str, Any]) -> GroundTruth:
    """Build GroundTruth from a parsed truth.json (format 1, docs/simulation.md).

    The document is parsed and validated once, by ``Truth.from_dict``; its ValueError
    becomes a TruthFormatError.
    """
    if not isinstance(document, Mapping):
        raise TruthFormatError('truth.json must hold a JSON object')
    try:
        truth = Truth.from_dict(dict(document))
    except ValueError as error:
        raise TruthFormatError(f'truth.json: {error}') from None
    return ground_truth(truth)


def ground_truth(truth: Truth) -> GroundTruth:
    """Reduce the simulator's Truth to what the metrics compare."""
    people = tuple(TruthPerson(
        p.person_id, p.role, p.account_id or '', p.party_id or 0, p.enter_ns, p.exit_ns or 0)
        for p in truth.people)
    frames = tuple(TruthFrame(f.stamp_ns, tuple((q.person_id, q.x_m, q.y_m) for q in f.people))
                   for f in truth.frames)
    events = tuple(TruthEvent(
        e.event_id, e.kind, e.stamp_ns, e.start_ns, e.end_ns, e.person_id,
        e.account_id or '', e.sku, e.quantity, e.bin_id or '', e.shelf_id or '')
        for e in truth.events)
    touches = tuple(TruthTouch(t.touch_id, t.bin_id, t.start_ns, t.end_ns, t.person_id)
                    for t in truth.touches)
    receipts: dict[str, dict[str, int]] = {}
    for receipt in truth.receipts:
        lines = receipts.setdefault(receipt.account_id, {})
        for line in receipt.lines:
            lines[line.sku] = lines.get(line.sku, 0) + line.quantity
    return GroundTruth(
        scenario=truth.scenario, seed=truth.seed, start_ns=truth.start_ns,
        end_ns=truth.end_ns, frame_period_ns=truth.frame_period_ns, people=people,
        frames=frames, events=events,
        receipts={a: {s: q for s, q in lines.items() if q} for a, lines in receipts.items()},
        check_in_count=len(truth.check_ins), touches=touches, store=truth.store)
