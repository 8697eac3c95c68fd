"""Values of the association: its config, inputs and outputs (pure, no ROS).

Times are integer nanoseconds (the stamps of the inputs, i.e. sensor time; sim time under
replay), positions metres in the map frame.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Mapping, Optional

NS_PER_SECOND = 1_000_000_000

# Track roles (the values of Track.role).
ROLE_UNKNOWN = 0
ROLE_SHOPPER = 1
ROLE_ASSOCIATE = 2

# Shelf event kinds (the values of ShelfEvent.event_type).
PICK = 1
RETURN = 2
UNKNOWN = 3

# Which hand a product observation is of (ProductObservation.hand).
HAND_NONE = 0
HAND_LEFT = 1
HAND_RIGHT = 2
HAND_CARRIED = 3    # what the person carries (basket, bag), not a hand in a bin

# A cart event cites at most this many evidence ids (the ledger's bound).
MAX_EVIDENCE_IDS = 32


class InputRejectedError(ValueError):
    """An input the association cannot use (logged, counted and dropped by the caller).

    ``reason`` is a short snake_case word for the diagnostics counter.
    """

    def __init__(self, reason: str, message: str) -> None:
        """Keep the counter name and the message."""
        super().__init__(message)
        self.reason = reason


def _seconds(name: str, value: float, low: float, high: float) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ValueError(f'{name} must be in [{low}, {high}], got {value!r}')


@dataclass(frozen=True)
class AssociationConfig:
    """Policy of the association engine (docs/shelf-to-cart.md, "Association and receipts")."""

    # Skeleton frames this long before a shelf event's start / after its end still count
    # as a hand in the bin for it (s), at ``pad_weight`` of a frame inside [start, end].
    hand_pad_s: float = 0.5
    pad_weight: float = 0.3
    # A second person whose hand score reaches this share of the best one's makes the
    # person choice ambiguous: the event goes to review.
    ambiguous_person_ratio: float = 0.8
    # Without hand evidence: tracks farther than this from the bin front did not reach it
    # (m); a second track within ``distance_margin_m`` of the nearest one is ambiguous.
    reach_distance_m: float = 1.0
    distance_margin_m: float = 0.3
    # An item nobody reached is raised for review on the nearest shopper within this (m).
    review_radius_m: float = 2.5
    # Inputs must cover [start, end + input_margin_s] before an event resolves; it waits
    # at most ``max_input_wait_s`` (clock of ``advance``) and then resolves with what came.
    input_margin_s: float = 0.5
    max_input_wait_s: float = 3.0
    # A stream (skeletons, product observations) silent for this long is not waited for.
    stream_timeout_s: float = 2.0
    # Shelf events arrive up to this long after their stamp (weight fusion settles first):
    # the watermark trails the clock by it.
    shelf_event_latency_s: float = 2.0
    # Product observations within this of [start, end] are evidence for an event (s).
    observation_pad_s: float = 1.5
    # Likelihood an observation gives a SKU it does not list (never 0: one bad crop must
    # not veto the weight).
    observation_floor: float = 0.02
    # Exponent on the likelihood a hand observation (a crop round the hand that was in
    # the bin) gives a SKU; bin observations count with 1. 0 ignores hand crops.
    hand_observation_weight: float = 1.0
    # The same for what the chosen person carries (HAND_CARRIED crops). 0 ignores them.
    carried_observation_weight: float = 1.0
    # Prior of returning a SKU the person does not hold (the cart is matched first).
    not_in_cart_prior: float = 0.05
    # Below this posterior of the chosen (SKU, quantity) the event goes to review.
    min_sku_probability: float = 0.6
    # Hand-off: hands of two tracks closer than this (m) in at least ``hand_off_frames``
    # skeleton frames, and the receiver's hand seen with the SKU (probability at least
    # ``hand_off_min_probability``) within ``observation_pad_s`` after the hands parted.
    hand_off_distance_m: float = 0.25
    hand_off_frames: int = 2
    hand_off_min_probability: float = 0.6
    # Shelf events stamped further ahead of the clock than this are refused.
    future_tolerance_s: float = 2.0
    # Track, skeleton and observation history kept (s); events older than this resolve
    # without the evidence that was dropped.
    history_s: float = 60.0
    # Events waiting for inputs at most; more are refused (counted by the caller).
    max_pending_events: int = 1000

    def __post_init__(self) -> None:
        """Validate every field."""
        _seconds('hand_pad_s', self.hand_pad_s, 0.0, 10.0)
        _seconds('pad_weight', self.pad_weight, 0.0, 1.0)
        _seconds('ambiguous_person_ratio', self.ambiguous_person_ratio, 0.0, 1.0)
        _seconds('reach_distance_m', self.reach_distance_m, 0.05, 10.0)
        _seconds('distance_margin_m', self.distance_margin_m, 0.0, 10.0)
        _seconds('review_radius_m', self.review_radius_m, 0.0, 50.0)
        _seconds('input_margin_s', self.input_margin_s, 0.0, 60.0)
        _seconds('max_input_wait_s', self.max_input_wait_s, 0.0, 600.0)
        _seconds('stream_timeout_s', self.stream_timeout_s, 0.01, 600.0)
        _seconds('shelf_event_latency_s', self.shelf_event_latency_s, 0.0, 600.0)
        _seconds('observation_pad_s', self.observation_pad_s, 0.0, 60.0)
        _seconds('observation_floor', self.observation_floor, 1e-6, 1.0)
        _seconds('hand_observation_weight', self.hand_observation_weight, 0.0, 10.0)
        _seconds('carried_observation_weight', self.carried_observation_weight, 0.0, 10.0)
        _seconds('not_in_cart_prior', self.not_in_cart_prior, 1e-6, 1.0)
        _seconds('min_sku_probability', self.min_sku_probability, 0.0, 1.0)
        _seconds('hand_off_distance_m', self.hand_off_distance_m, 0.0, 2.0)
        if isinstance(self.hand_off_frames, bool) or not isinstance(self.hand_off_frames, int) \
                or not 1 <= self.hand_off_frames <= 1000:
            raise ValueError(f'hand_off_frames must be in [1, 1000], got {self.hand_off_frames!r}')
        _seconds('hand_off_min_probability', self.hand_off_min_probability, 0.0, 1.0)
        _seconds('future_tolerance_s', self.future_tolerance_s, 0.0, 3600.0)
        _seconds('history_s', self.history_s, 1.0, 86_400.0)
        if self.history_s < self.max_input_wait_s + self.shelf_event_latency_s:
            raise ValueError('history_s must be at least max_input_wait_s + '
                             'shelf_event_latency_s (evidence must outlive the wait)')
        if isinstance(self.max_pending_events, bool) or \
                not isinstance(self.max_pending_events, int) or \
                not 1 <= self.max_pending_events <= 1_000_000:
            raise ValueError('max_pending_events must be in [1, 1000000], '
                             f'got {self.max_pending_events!r}')

    def ns(self, seconds: float) -> int:
        """Return ``seconds`` in integer nanoseconds."""
        return round(seconds * NS_PER_SECOND)


@dataclass(frozen=True)
class BinSite:
    """A bin as the association sees it: its shelf, its front point (map) and its stock."""

    bin_id: str
    shelf_id: str
    front_x_m: float
    front_y_m: float
    skus: tuple[str, ...] = ()


@dataclass(frozen=True)
class SkuCandidate:
    """``quantity`` units of ``sku`` explain an observation with ``likelihood``."""

    sku: str
    quantity: int
    likelihood: float


@dataclass(frozen=True)
class ShelfEventIn:
    """A settled weight change of one bin (weight fusion's ShelfEvent)."""

    event_id: str
    stamp_ns: int          # settle time
    shelf_id: str
    bin_id: str
    kind: int              # PICK, RETURN or UNKNOWN
    delta_grams: float
    start_ns: int
    end_ns: int
    candidates: tuple[SkuCandidate, ...] = ()


@dataclass(frozen=True)
class TrackIn:
    """One tracked person at one time (the tracker's Track)."""

    track_id: int
    x_m: float
    y_m: float
    role: int = ROLE_SHOPPER
    visit_id: str = ''
    account_id: str = ''


@dataclass(frozen=True)
class SkeletonIn:
    """One person's hands at one time (pose's Skeleton); positions None when not seen."""

    track_id: int
    left_bin_id: str = ''
    right_bin_id: str = ''
    left_hand_m: Optional[tuple[float, float, float]] = None
    right_hand_m: Optional[tuple[float, float, float]] = None


@dataclass(frozen=True)
class ProductObservationIn:
    """What product a hand, what a person carries or a bin showed at a time.

    A hand: track_id and HAND_LEFT / HAND_RIGHT; what a person carries: track_id and
    HAND_CARRIED; a bin: HAND_NONE.
    """

    observation_id: str
    stamp_ns: int
    track_id: int
    hand: int
    bin_id: str
    camera_id: str
    category: str
    category_probability: float
    skus: tuple[SkuCandidate, ...] = ()


@dataclass(frozen=True)
class CartEventOut:
    """A change of one visit's cart (becomes a go_store/CartEvent)."""

    event_id: str
    stamp_ns: int
    visit_id: str
    account_id: str
    track_id: int
    sku: str
    quantity_delta: int
    confidence: float
    evidence_ids: tuple[str, ...]
    needs_review: bool = False
    review_reason: str = ''


def catalog_categories(catalog: Mapping[str, str]) -> Mapping[str, str]:
    """Check a SKU -> category mapping (non-empty SKU ids) and return it as a dict."""
    checked = {}
    for sku, category in catalog.items():
        if not isinstance(sku, str) or not sku:
            raise ValueError(f'catalog SKU ids must be non-empty strings, got {sku!r}')
        checked[sku] = str(category)
    if not checked:
        raise ValueError('the catalog is empty')
    return checked
