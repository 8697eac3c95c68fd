"""Event-time association: shelf events + hands + products + tracks -> cart events.

``AssociationEngine`` is a plain object: feed it tracks, skeletons, product observations
and shelf events as they arrive (each with the caller's clock ``now_ns``), call
``advance(now_ns)`` and publish what it returns. Rules (docs/shelf-to-cart.md):

- who: the track with a hand in the event's bin during [start, end] (skeleton hand-bin
  ids, frames in the padding count less); without any hand evidence the track nearest to
  the bin front within reach. A second candidate nearly as good is a review, never a guess;
  an associate is never charged (counted); a track without a visit cannot be charged
  (counted, logged).
- what: the weight candidates (SKU x quantity) times the product observations of the bin
  and of the hand that was in it, normalised; a return is matched against the returner's
  cart first (SKUs they hold have prior 1, others ``not_in_cart_prior``).
- hand-offs: two tracks' hands meet, and afterwards the receiver's hand shows a SKU the
  giver's cart holds: -1 for the giver, +1 for the receiver (different visits only).
- ids: ``cart-<shelf event id>`` and ``handoff-<stamp>-<giver>-<receiver>-<sku>-give/take``,
  so a re-run never makes a second id for the same change.
- watermark: every shelf event stamped at or before it has been resolved.
"""

from __future__ import annotations

from collections import Counter, deque, OrderedDict
from dataclasses import dataclass, field
import math
from typing import Iterable, Mapping, Optional, Sequence

from .values import (
    AssociationConfig,
    BinSite,
    CartEventOut,
    catalog_categories,
    HAND_CARRIED,
    HAND_LEFT,
    HAND_NONE,
    HAND_RIGHT,
    InputRejectedError,
    MAX_EVIDENCE_IDS,
    PICK,
    ProductObservationIn,
    RETURN,
    ROLE_ASSOCIATE,
    ShelfEventIn,
    SkeletonIn,
    SkuCandidate,
    TrackIn,
    UNKNOWN,
)

CART_EVENT_PREFIX = 'cart-'
HAND_OFF_PREFIX = 'handoff-'
# Cart event ids are at most 128 characters (the ledger's key); the prefix needs 5.
MAX_SHELF_EVENT_ID = 120
# Shelf event ids remembered after resolution, so a re-sent one is not resolved twice.
DONE_MEMORY = 100_000
# A track sample further than this from the event time does not place the track (s).
POSITION_GAP_NS = 1_000_000_000
SIDES = {HAND_LEFT: 'left', HAND_RIGHT: 'right'}


@dataclass
class _Pending:
    event: ShelfEventIn
    received_ns: int


@dataclass
class _Meeting:
    """Hands of two tracks close together, frame after frame."""

    first: int
    second: int
    start_ns: int
    end_ns: int
    frames: int = 1
    closed_at_ns: int = 0  # caller clock when the hands parted


@dataclass
class _Stream:
    latest_stamp_ns: int = 0
    received_ns: Optional[int] = None  # caller clock of the last message


@dataclass
class _Choice:
    track_id: Optional[int]
    confidence: float
    reason: str = ''                      # review reason, '' when clear
    sides: set[str] = field(default_factory=set)
    evidence: list[str] = field(default_factory=list)


def _printable_id(value: str, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()


class AssociationEngine:
    """Turns shelf events into cart events, in event time (see the module docstring)."""

    def __init__(self, config: AssociationConfig, bins: Mapping[str, BinSite],
                 catalog: Mapping[str, str]) -> None:
        """Take the policy, the bins (id -> site) and the catalog (SKU -> category)."""
        if not bins:
            raise ValueError('no bins: the association needs the store description')
        self.config = config
        self._bins = dict(bins)
        self._catalog = catalog_categories(catalog)
        self.counters: Counter[str] = Counter()
        self._messages: list[str] = []
        self._positions: dict[int, deque[tuple[int, float, float]]] = {}
        self._tracks: dict[int, TrackIn] = {}
        self._skeletons: deque[tuple[int, SkeletonIn]] = deque()
        self._observations: deque[ProductObservationIn] = deque()
        self._pending: dict[str, _Pending] = {}
        self._done: OrderedDict[str, None] = OrderedDict()
        self._carts: dict[str, Counter[str]] = {}
        self._open_meetings: dict[tuple[int, int], _Meeting] = {}
        self._closed_meetings: list[_Meeting] = []
        self._streams = {name: _Stream() for name in ('tracks', 'skeletons', 'observations')}
        self._watermark_ns = 0
        self._visit_of_track: dict[int, tuple[str, str]] = {}  # from the gate's visits
        self._ended: deque[tuple[int, str]] = deque()  # (caller clock, visit) of exits
        # (bin, start, end, track) of resolved events: one reach explains one weight change.
        self._reaches: deque[tuple[str, int, int, int]] = deque(maxlen=256)

    # -- state ---------------------------------------------------------------------------

    @property
    def watermark_ns(self) -> int:
        """Event time up to which every shelf event received has been resolved."""
        return self._watermark_ns

    @property
    def pending_count(self) -> int:
        """Shelf events waiting for their inputs."""
        return len(self._pending)

    def drain_messages(self) -> list[str]:
        """Return (and forget) the log lines of what could not be charged and why."""
        messages, self._messages = self._messages, []
        return messages

    def cart(self, visit_id: str) -> dict[str, int]:
        """Return the engine's view of a visit's cart (SKU -> units > 0)."""
        return {sku: n for sku, n in self._carts.get(visit_id, Counter()).items() if n > 0}

    def restore(self, event: CartEventOut) -> None:
        """Replay an event sent before a restart into the carts (returns match them)."""
        self._done[event.event_id.removeprefix(CART_EVENT_PREFIX)] = None
        if not event.needs_review:
            self._carts.setdefault(event.visit_id, Counter())[event.sku] += \
                event.quantity_delta

    def _note(self, counter: str, message: str) -> None:
        self.counters[counter] += 1
        self._messages.append(message)

    # -- inputs ----------------------------------------------------------------------------

    def add_tracks(self, stamp_ns: int, tracks: Iterable[TrackIn], now_ns: int) -> None:
        """Take one tracker snapshot (every live track at ``stamp_ns``)."""
        for track in tracks:
            if not all(math.isfinite(v) for v in (track.x_m, track.y_m)):
                self.counters['dropped_malformed_tracks'] += 1
                continue
            self._tracks[track.track_id] = track
            self._positions.setdefault(track.track_id, deque()).append(
                (stamp_ns, track.x_m, track.y_m))
        self._touch('tracks', stamp_ns, now_ns)

    def add_visit(self, visit_id: str, account_id: str, track_ids: Iterable[int]) -> None:
        """Link tracks to a visit (the gate's Visit), for tracks that do not carry it yet."""
        for track_id in track_ids:
            self._visit_of_track[track_id] = (visit_id, account_id)

    def end_visit(self, visit_id: str, now_ns: int) -> None:
        """Forget a visit's cart and track links ``history_s`` after its exit (memory)."""
        self._ended.append((now_ns, visit_id))

    def _linked(self, track: Optional[TrackIn]) -> Optional[TrackIn]:
        """Return the track with its visit filled in from the gate's visits when it has none."""
        if track is None or track.visit_id or track.track_id not in self._visit_of_track:
            return track
        visit_id, account_id = self._visit_of_track[track.track_id]
        return TrackIn(track.track_id, track.x_m, track.y_m, track.role, visit_id, account_id)

    def add_skeletons(self, stamp_ns: int, skeletons: Sequence[SkeletonIn],
                      now_ns: int) -> None:
        """Take the stick figures of one capture time; hand-bin ids must name known bins."""
        hands: dict[int, list[tuple[float, float, float]]] = {}
        for skeleton in skeletons:
            for bin_id in (skeleton.left_bin_id, skeleton.right_bin_id):
                if bin_id and bin_id not in self._bins:
                    self.counters['unknown_hand_bins'] += 1
            clean = SkeletonIn(
                skeleton.track_id,
                skeleton.left_bin_id if skeleton.left_bin_id in self._bins else '',
                skeleton.right_bin_id if skeleton.right_bin_id in self._bins else '',
                skeleton.left_hand_m, skeleton.right_hand_m)
            self._skeletons.append((stamp_ns, clean))
            hands[skeleton.track_id] = [p for p in (skeleton.left_hand_m,
                                                    skeleton.right_hand_m)
                                        if p is not None and all(map(math.isfinite, p))]
        self._find_meetings(stamp_ns, hands, now_ns)
        self._touch('skeletons', stamp_ns, now_ns)

    def add_observations(self, stamp_ns: int, observations: Iterable[ProductObservationIn],
                         now_ns: int) -> None:
        """Take the product observations of one capture time (unknown SKUs dropped)."""
        for observation in observations:
            skus = tuple(c for c in observation.skus if c.sku in self._catalog)
            if len(skus) != len(observation.skus):
                self.counters['observation_skus_not_in_catalog'] += \
                    len(observation.skus) - len(skus)
            if observation.bin_id and observation.bin_id not in self._bins:
                self.counters['unknown_observation_bins'] += 1
                continue
            self._observations.append(ProductObservationIn(
                observation.observation_id, observation.stamp_ns, observation.track_id,
                observation.hand, observation.bin_id, observation.camera_id,
                observation.category, observation.category_probability, skus))
        self._touch('observations', stamp_ns, now_ns)

    def add_shelf_event(self, event: ShelfEventIn, now_ns: int) -> bool:
        """Queue a shelf event until its inputs are in; False for a repeat of a known one.

        Raises ``InputRejectedError`` for an unknown shelf/bin, a SKU missing from the catalog,
        a stamp from the future, a malformed event or a full queue.
        """
        config = self.config
        if not _printable_id(event.event_id, MAX_SHELF_EVENT_ID):
            raise InputRejectedError('malformed', f'bad shelf event id {event.event_id!r}')
        site = self._bins.get(event.bin_id)
        if site is None or site.shelf_id != event.shelf_id:
            raise InputRejectedError('unknown_bin', f'shelf event {event.event_id}: unknown bin '
                                f'{event.shelf_id}/{event.bin_id}')
        if event.kind not in (PICK, RETURN, UNKNOWN) or event.start_ns > event.end_ns \
                or event.start_ns < 0 or not math.isfinite(event.delta_grams):
            raise InputRejectedError('malformed', f'shelf event {event.event_id}: bad type, '
                                'interval or delta')
        future_ns = now_ns + config.ns(config.future_tolerance_s)
        # now_ns 0: a sim-time node before its first /clock cannot judge the future.
        if now_ns > 0 and (event.stamp_ns > future_ns or event.end_ns > future_ns):
            raise InputRejectedError('future_stamp', f'shelf event {event.event_id} stamped '
                                f'{(event.stamp_ns - now_ns) / 1e9:.1f} s in the future')
        for candidate in event.candidates:
            if candidate.quantity < 1 or not math.isfinite(candidate.likelihood) or \
                    not 0.0 <= candidate.likelihood <= 1.0:
                raise InputRejectedError('malformed', f'shelf event {event.event_id}: bad '
                                    f'candidate {candidate}')
        known = tuple(c for c in event.candidates if c.sku in self._catalog)
        if event.candidates and not known:
            raise InputRejectedError('sku_not_in_catalog', f'shelf event {event.event_id}: no '
                                'candidate SKU is in the catalog')
        if len(known) != len(event.candidates):
            self.counters['candidate_skus_not_in_catalog'] += len(event.candidates) - len(known)
        if event.event_id in self._pending or event.event_id in self._done:
            self.counters['duplicate_shelf_events'] += 1
            return False
        if len(self._pending) >= config.max_pending_events:
            raise InputRejectedError('queue_full', f'shelf event {event.event_id}: '
                                f'{len(self._pending)} events already wait')
        if event.stamp_ns <= self._watermark_ns:
            self.counters['late_shelf_events'] += 1
        self._pending[event.event_id] = _Pending(
            ShelfEventIn(event.event_id, event.stamp_ns, event.shelf_id, event.bin_id,
                         event.kind, event.delta_grams, event.start_ns, event.end_ns, known),
            now_ns)
        return True

    def _touch(self, stream: str, stamp_ns: int, now_ns: int) -> None:
        state = self._streams[stream]
        state.latest_stamp_ns = max(state.latest_stamp_ns, stamp_ns)
        state.received_ns = now_ns

    # -- resolution --------------------------------------------------------------------------

    def _covered(self, until_ns: int, now_ns: int, streams: Sequence[str]) -> bool:
        """Whether every live stream has reported up to ``until_ns``."""
        timeout = self.config.ns(self.config.stream_timeout_s)
        for name in streams:
            state = self._streams[name]
            alive = state.received_ns is not None and now_ns - state.received_ns <= timeout
            if alive and state.latest_stamp_ns < until_ns:
                return False
        return True

    def _products_in(self, event: ShelfEventIn) -> bool:
        """Whether the product evidence an event needs is in (or cannot come).

        Product observations are sparse (one per crop, stamped with the frame's capture
        time, which precedes a pick), so their stream's progress says nothing: an event
        waits for an observation of its bin or of a hand in the window, unless the weight
        alone is decisive (one candidate with at least ``min_sku_probability``). Without
        product ID it waits ``max_input_wait_s`` and goes to review (``ambiguous_sku``).
        """
        if event.kind != UNKNOWN and event.candidates and \
                max(c.likelihood for c in event.candidates) >= self.config.min_sku_probability:
            return True
        pad = self.config.ns(self.config.observation_pad_s)
        hand_pad = self.config.ns(self.config.hand_pad_s)
        reached = {skeleton.track_id for stamp_ns, skeleton in self._skeletons
                   if event.start_ns - hand_pad <= stamp_ns <= event.end_ns + hand_pad
                   and event.bin_id in (skeleton.left_bin_id, skeleton.right_bin_id)}
        return any(event.start_ns - pad <= o.stamp_ns <= event.end_ns + pad
                   and (o.bin_id == event.bin_id if o.hand in (HAND_NONE, HAND_CARRIED)
                        else o.track_id in reached and o.bin_id in ('', event.bin_id))
                   for o in self._observations)

    def advance(self, now_ns: int) -> list[CartEventOut]:
        """Resolve every event whose inputs are in (or waited long enough), in stamp order."""
        config = self.config
        margin = config.ns(config.input_margin_s)
        wait = config.ns(config.max_input_wait_s)
        work: list[tuple[int, str, object]] = [
            (p.event.stamp_ns, p.event.event_id, p) for p in self._pending.values()]
        work += [(m.end_ns, f'~{m.first}-{m.second}', m) for m in self._closed_meetings]
        work.sort(key=lambda item: (item[0], item[1]))
        out: list[CartEventOut] = []
        for _, _, item in work:
            if isinstance(item, _Pending):
                event = item.event
                ready = self._covered(event.end_ns + margin, now_ns,
                                      ('tracks', 'skeletons')) and self._products_in(event)
                if not ready and now_ns - item.received_ns < wait:
                    break  # later events wait too: carts change in stamp order
                if not ready:
                    self.counters['resolved_after_wait'] += 1
                del self._pending[event.event_id]
                self._remember(event.event_id)
                out.extend(self._resolve_safely(event))
            else:
                assert isinstance(item, _Meeting)
                ready = self._covered(item.end_ns + config.ns(config.observation_pad_s),
                                      now_ns, ('observations',))
                if not ready and now_ns - item.closed_at_ns < wait:
                    break
                self._closed_meetings.remove(item)
                out.extend(self._resolve_hand_off(item))
        self._advance_watermark(now_ns)
        self._forget(now_ns)
        return out

    def _advance_watermark(self, now_ns: int) -> None:
        tracks = self._streams['tracks']
        clock = min(now_ns, tracks.latest_stamp_ns)
        bound = clock - self.config.ns(self.config.shelf_event_latency_s)
        for pending in self._pending.values():
            bound = min(bound, pending.event.stamp_ns - 1)
        for meeting in [*self._closed_meetings, *self._open_meetings.values()]:
            bound = min(bound, meeting.end_ns - 1)
        self._watermark_ns = max(self._watermark_ns, bound)

    def _remember(self, event_id: str) -> None:
        self._done[event_id] = None
        while len(self._done) > DONE_MEMORY:
            self._done.popitem(last=False)

    def _forget(self, now_ns: int) -> None:
        """Drop evidence older than ``history_s`` before the oldest thing still needing it."""
        horizon = min([now_ns, *(p.event.start_ns for p in self._pending.values()),
                       *(m.start_ns for m in self._closed_meetings)])
        cutoff = horizon - self.config.ns(self.config.history_s)
        while self._ended and self._ended[0][0] < cutoff:
            _, visit_id = self._ended.popleft()
            self._carts.pop(visit_id, None)
            for track_id in [t for t, (v, _) in self._visit_of_track.items() if v == visit_id]:
                del self._visit_of_track[track_id]
        while self._skeletons and self._skeletons[0][0] < cutoff:
            self._skeletons.popleft()
        while self._observations and self._observations[0].stamp_ns < cutoff:
            self._observations.popleft()
        for track_id in list(self._positions):
            samples = self._positions[track_id]
            while samples and samples[0][0] < cutoff:
                samples.popleft()
            if not samples:
                del self._positions[track_id]
                self._tracks.pop(track_id, None)

    # -- who ----------------------------------------------------------------------------------

    def _choose_person(self, event: ShelfEventIn) -> _Choice:
        """Choose by hands in the bin: the in-bin interval that matches the weight change.

        Per track, the skeleton frames with a hand in the event's bin (within ``hand_pad_s``)
        form runs; a run's score is its overlap with [start, end] over their union (the
        picker's hand arrives when the weight starts to change and leaves before it
        settles; a neighbour reaching into the same bin overlaps only in part).
        """
        config = self.config
        pad = config.ns(config.hand_pad_s)
        stamps: dict[int, list[int]] = {}
        sides: dict[int, set[str]] = {}
        for stamp_ns, skeleton in self._skeletons:
            if not event.start_ns - pad <= stamp_ns <= event.end_ns + pad:
                continue
            for side, bin_id in (('left', skeleton.left_bin_id),
                                 ('right', skeleton.right_bin_id)):
                if bin_id == event.bin_id:
                    stamps.setdefault(skeleton.track_id, []).append(stamp_ns)
                    sides.setdefault(skeleton.track_id, set()).add(side)
        if not stamps:
            return self._choose_by_distance(event)
        scores = {track_id: self._interval_score(sorted(times), event)
                  for track_id, times in stamps.items()}
        # Two weight changes of one bin at once are two hands: a track whose reach already
        # explained an overlapping change of this bin yields to the others.
        used = {track for bin_id, start, end, track in self._reaches
                if bin_id == event.bin_id and start < event.end_ns and event.start_ns < end}
        if set(scores) - used:
            scores = {t: v for t, v in scores.items() if t not in used}
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        best, best_score = ranked[0]
        second_score = ranked[1][1] if len(ranked) > 1 else 0.0
        evidence = [f'skeleton:{t}@{stamps[t][0]}' for t, _ in ranked[:2]]
        self._reaches.append((event.bin_id, event.start_ns, event.end_ns, best))
        confidence = best_score / (best_score + second_score) if best_score > 0 else 0.5
        # (One track whose hand was in the bin only in the padding scores 0: not ambiguous.)
        if len(ranked) > 1 and second_score >= config.ambiguous_person_ratio * best_score:
            return _Choice(best, confidence, f'ambiguous_person:{ranked[1][0]}',
                           sides[best], evidence)
        return _Choice(best, confidence, '', sides[best], evidence)

    @staticmethod
    def _interval_score(times: list[int], event: ShelfEventIn) -> float:
        """Best overlap-over-union of a run of in-bin frames with [start, end]."""
        # Frames further apart than this end a run (a hand that left and came back).
        gap_ns = 300_000_000
        # Half a frame at 15 Hz on each side: a run of one frame still has a length.
        half_frame_ns = 33_000_000
        best = 0.0
        run_start = previous = times[0]
        for stamp in [*times[1:], None]:
            if stamp is not None and stamp - previous <= gap_ns:
                previous = stamp
                continue
            low, high = run_start - half_frame_ns, previous + half_frame_ns
            overlap = min(high, event.end_ns) - max(low, event.start_ns)
            union = max(high, event.end_ns) - min(low, event.start_ns)
            if union > 0:
                best = max(best, max(overlap, 0) / union)
            if stamp is not None:
                run_start = previous = stamp
        return best

    def _position(self, track_id: int, stamp_ns: int) -> Optional[tuple[float, float]]:
        best: Optional[tuple[int, float, float]] = None
        for sample in self._positions.get(track_id, ()):
            if best is None or abs(sample[0] - stamp_ns) < abs(best[0] - stamp_ns):
                best = sample
        if best is None or abs(best[0] - stamp_ns) > POSITION_GAP_NS:
            return None
        return best[1], best[2]

    def _choose_by_distance(self, event: ShelfEventIn) -> _Choice:
        config = self.config
        site = self._bins[event.bin_id]
        middle = (event.start_ns + event.end_ns) // 2
        distances = []
        for track_id in self._positions:
            position = self._position(track_id, middle)
            if position is not None:
                distances.append((math.hypot(position[0] - site.front_x_m,
                                             position[1] - site.front_y_m), track_id))
        distances.sort()
        reached = [(d, t) for d, t in distances if d <= config.reach_distance_m]
        if not reached:
            shoppers = [(d, t) for d, t in distances if d <= config.review_radius_m
                        and self._tracks[t].role != ROLE_ASSOCIATE
                        and (self._tracks[t].visit_id or t in self._visit_of_track)]
            if shoppers:
                return _Choice(shoppers[0][1], 0.0, 'no_person_reached_bin')
            return _Choice(None, 0.0, 'no_person_reached_bin')
        best_d, best = reached[0]
        confidence = max(0.0, 1.0 - best_d / config.reach_distance_m)
        if len(reached) > 1 and reached[1][0] - best_d <= config.distance_margin_m:
            return _Choice(best, confidence * 0.5, f'ambiguous_person:{reached[1][1]}')
        return _Choice(best, confidence)

    # -- what ---------------------------------------------------------------------------------

    def _observation_likelihood(self, observation: ProductObservationIn, sku: str) -> float:
        floor = self.config.observation_floor
        if observation.skus:
            for candidate in observation.skus:
                if candidate.sku == sku:
                    return max(floor, candidate.likelihood)
            listed = sum(c.likelihood for c in observation.skus)
            unlisted = max(1, len(self._catalog) - len(observation.skus))
            return max(floor, (1.0 - listed) / unlisted)
        if observation.category:
            p = observation.category_probability
            return max(floor, p if self._catalog.get(sku) == observation.category else 1.0 - p)
        return 1.0

    def _weighted_likelihood(self, observation: ProductObservationIn, sku: str) -> float:
        """Return an observation's likelihood of a SKU, raised to its kind's weight.

        Bin crops count 1, hand crops ``hand_observation_weight``, what the person carries
        ``carried_observation_weight``.
        """
        likelihood = self._observation_likelihood(observation, sku)
        if observation.hand == HAND_NONE:
            return likelihood
        if observation.hand == HAND_CARRIED:
            return float(likelihood ** self.config.carried_observation_weight)
        return float(likelihood ** self.config.hand_observation_weight)

    def _evidence_observations(self, event: ShelfEventIn, track_id: Optional[int],
                               sides: set[str]) -> list[ProductObservationIn]:
        """Return the bin crops of the event's bin and the chosen person's crops of it.

        A hand crop must be of a hand that was in the bin (``sides``); a hand or carried
        crop must name the event's bin (or none): a crop of the same person at another
        bin's event a moment earlier is that event's evidence, not this one's.
        """
        pad = self.config.ns(self.config.observation_pad_s)
        chosen = []
        for observation in self._observations:
            if not event.start_ns - pad <= observation.stamp_ns <= event.end_ns + pad:
                continue
            if observation.hand == HAND_NONE:
                if observation.bin_id == event.bin_id:
                    chosen.append(observation)
            elif track_id is not None and observation.track_id == track_id and \
                    observation.bin_id in ('', event.bin_id) and \
                    (observation.hand == HAND_CARRIED or not sides
                     or SIDES.get(observation.hand) in sides):
                chosen.append(observation)
        return chosen

    def _posterior(self, candidates: Sequence[SkuCandidate],
                   observations: Sequence[ProductObservationIn],
                   held: Optional[Mapping[str, int]]) -> list[tuple[float, SkuCandidate]]:
        scored = []
        for candidate in candidates:
            score = max(candidate.likelihood, 1e-9)
            if held is not None and held.get(candidate.sku, 0) <= 0:
                score *= self.config.not_in_cart_prior
            for observation in observations:
                score *= self._weighted_likelihood(observation, candidate.sku)
            scored.append((score, candidate))
        total = sum(score for score, _ in scored)
        if total <= 0.0:
            return []
        return sorted(((score / total, c) for score, c in scored),
                      key=lambda item: (-item[0], item[1].sku, item[1].quantity))

    # -- one shelf event ----------------------------------------------------------------------

    def _resolve_safely(self, event: ShelfEventIn) -> list[CartEventOut]:
        """Resolve one event; a failure is counted and reported, never lost with the tick.

        A bug met while resolving one event must not drop the cart events already made in
        the same pass (they are remembered as done) nor stop the watermark.
        """
        try:
            return self._resolve(event)
        except Exception as error:  # noqa: BLE001 (one bad event must not stop the others)
            self._note('resolve_errors', f'shelf event {event.event_id} on {event.bin_id} '
                       f'could not be resolved ({error!r}); not charged')
            return []

    def _resolve(self, event: ShelfEventIn) -> list[CartEventOut]:
        choice = self._choose_person(event)
        evidence = [event.event_id, *choice.evidence]
        if choice.track_id is None:
            self._note('unexplained_events', f'shelf event {event.event_id} on '
                       f'{event.bin_id}: nobody near the bin, no visit to hold for review')
            return []
        track = self._linked(self._tracks.get(choice.track_id))
        if track is not None and track.role == ROLE_ASSOCIATE and not choice.reason:
            self.counters['associate_events'] += 1
            return []
        if track is not None and track.role == ROLE_ASSOCIATE:
            # Ambiguous between an associate and someone else: hold the other person's.
            other = int(choice.reason.split(':', 1)[1])
            other_track = self._linked(self._tracks.get(other))
            if other_track is not None and other_track.role != ROLE_ASSOCIATE:
                track, choice = other_track, _Choice(other, choice.confidence, choice.reason,
                                                     set(), choice.evidence)
        if track is None or not track.visit_id:
            self._note('events_without_visit', f'shelf event {event.event_id} on '
                       f'{event.bin_id}: track {choice.track_id} has no visit; not charged')
            return []
        observations = self._evidence_observations(event, choice.track_id, choice.sides)
        evidence += [o.observation_id for o in observations]
        reason = choice.reason
        if event.kind == UNKNOWN or not event.candidates:
            sku = self._best_observed_sku(event, observations)
            if sku is None:
                self._note('unexplained_events', f'shelf event {event.event_id}: no SKU '
                           'explains the weight change and none was seen')
                return []
            delta = 1 if event.delta_grams < 0 else -1
            return [self._emit(event, track, sku, delta, 0.0, evidence,
                               reason or 'unexplained_weight_change')]
        held = self.cart(track.visit_id) if event.kind == RETURN else None
        posterior = self._posterior(event.candidates, observations, held)
        if not posterior:
            self._note('unexplained_events', f'shelf event {event.event_id}: candidates '
                       'have no likelihood')
            return []
        probability, best = posterior[0]
        if not reason and probability < self.config.min_sku_probability:
            reason = 'ambiguous_sku'
        delta = best.quantity if event.kind == PICK else -best.quantity
        return [self._emit(event, track, best.sku, delta, choice.confidence * probability,
                           evidence, reason)]

    def _best_observed_sku(self, event: ShelfEventIn,
                           observations: Sequence[ProductObservationIn]) -> Optional[str]:
        stocked = list(self._bins[event.bin_id].skus)
        seen = [c.sku for o in observations for c in o.skus]
        options = list(dict.fromkeys([*seen, *stocked]))
        if not options:
            return None
        scores = {sku: math.prod(self._weighted_likelihood(o, sku) for o in observations)
                  for sku in options}
        return max(options, key=lambda sku: (scores[sku], sku in stocked))

    def _emit(self, event: ShelfEventIn, track: TrackIn, sku: str, delta: int,
              confidence: float, evidence: Sequence[str], reason: str) -> CartEventOut:
        if reason:
            self.counters['review_events'] += 1
            self.counters[f'review_{reason.split(":", 1)[0]}'] += 1
        else:
            self._carts.setdefault(track.visit_id, Counter())[sku] += delta
        self.counters['cart_events'] += 1
        return CartEventOut(
            event_id=f'{CART_EVENT_PREFIX}{event.event_id}', stamp_ns=event.stamp_ns,
            visit_id=track.visit_id, account_id=track.account_id, track_id=track.track_id,
            sku=sku, quantity_delta=delta, confidence=min(1.0, max(0.0, confidence)),
            evidence_ids=tuple(dict.fromkeys(evidence))[:MAX_EVIDENCE_IDS],
            needs_review=bool(reason), review_reason=reason)

    # -- hand-offs ----------------------------------------------------------------------------

    def _find_meetings(self, stamp_ns: int, hands: Mapping[int, list[tuple[float, float, float]]],
                       now_ns: int) -> None:
        limit = self.config.hand_off_distance_m
        together = set()
        ids = sorted(hands)
        for i, first in enumerate(ids):
            for second in ids[i + 1:]:
                if any(math.dist(a, b) <= limit for a in hands[first] for b in hands[second]):
                    if self._between_visits(first, second):
                        together.add((first, second))
        for pair in together:
            meeting = self._open_meetings.get(pair)
            if meeting is None:
                self._open_meetings[pair] = _Meeting(pair[0], pair[1], stamp_ns, stamp_ns)
            else:
                meeting.end_ns = stamp_ns
                meeting.frames += 1
        for pair in [p for p in self._open_meetings if p not in together]:
            meeting = self._open_meetings.pop(pair)
            if meeting.frames >= self.config.hand_off_frames:
                meeting.closed_at_ns = now_ns
                self._closed_meetings.append(meeting)

    def _between_visits(self, first_id: int, second_id: int) -> bool:
        """Whether an item passing between these tracks could change a cart.

        Hands of a party (one visit, one cart), of associates or of tracks without a
        visit meet all the time; they are counted, never held as meetings (a held meeting
        holds the watermark).
        """
        first = self._linked(self._tracks.get(first_id))
        second = self._linked(self._tracks.get(second_id))
        if first is None or second is None or not first.visit_id or not second.visit_id \
                or ROLE_ASSOCIATE in (first.role, second.role):
            self.counters['hand_meetings_not_between_visits'] += 1
            return False
        if first.visit_id == second.visit_id:
            self.counters['hand_meetings_same_visit'] += 1
            return False
        return True

    def _resolve_hand_off(self, meeting: _Meeting) -> list[CartEventOut]:
        first = self._linked(self._tracks.get(meeting.first))
        second = self._linked(self._tracks.get(meeting.second))
        if first is None or second is None or not first.visit_id or not second.visit_id \
                or ROLE_ASSOCIATE in (first.role, second.role):
            self.counters['hand_offs_not_between_visits'] += 1
            return []
        if first.visit_id == second.visit_id:
            self.counters['hand_offs_same_visit'] += 1  # one cart: nothing moves
            return []
        pad = self.config.ns(self.config.observation_pad_s)
        options = []
        for giver, receiver in ((first, second), (second, first)):
            held = self.cart(giver.visit_id)
            for observation in self._observations:
                if observation.track_id != receiver.track_id \
                        or observation.hand in (HAND_NONE, HAND_CARRIED) \
                        or not meeting.start_ns <= observation.stamp_ns <= meeting.end_ns + pad:
                    continue
                for candidate in observation.skus:
                    if candidate.likelihood >= self.config.hand_off_min_probability and \
                            held.get(candidate.sku, 0) > 0:
                        options.append((giver, receiver, candidate.sku,
                                        observation.observation_id, candidate.likelihood))
        moves = {(g.track_id, r.track_id, sku) for g, r, sku, _, _ in options}
        if not moves:
            self.counters['hand_offs_unconfirmed'] += 1
            return []
        if len(moves) > 1:
            self._note('hand_offs_ambiguous', f'hands of tracks {meeting.first} and '
                       f'{meeting.second} met at {meeting.start_ns}: {sorted(moves)}; nothing '
                       'moved')
            return []
        giver, receiver, sku = options[0][:3]
        evidence = tuple(dict.fromkeys(
            [f'skeleton:{meeting.first}+{meeting.second}@{meeting.start_ns}',
             *(o[3] for o in options)]))[:MAX_EVIDENCE_IDS]
        confidence = max(o[4] for o in options)
        base = f'{HAND_OFF_PREFIX}{meeting.start_ns}-{giver.track_id}-{receiver.track_id}-{sku}'
        base = base[:MAX_SHELF_EVENT_ID]  # deterministic all the same; ids end '-give/-take'
        self.counters['hand_offs'] += 1
        self._carts.setdefault(giver.visit_id, Counter())[sku] -= 1
        self._carts.setdefault(receiver.visit_id, Counter())[sku] += 1
        return [CartEventOut(f'{base}-give', meeting.end_ns, giver.visit_id, giver.account_id,
                             giver.track_id, sku, -1, confidence, evidence),
                CartEventOut(f'{base}-take', meeting.end_ns, receiver.visit_id,
                             receiver.account_id, receiver.track_id, sku, 1, confidence,
                             evidence)]
