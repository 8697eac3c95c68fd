"""TEST HARNESS: association inputs made from a simulated run's truth, and the measurement.

Not perception: it stands in for the producers of the association's inputs while they are
being built, so that the association and the ledger's receipt rule can be measured.
From ``Truth`` it makes, in arrival order:

- tracks: one per person per truth frame (track id = person id, pelvis position, role;
  shoppers carry the visit of their party from its check-in on, as the tracker does once
  the gate linked them; tailgaters none);
- skeletons: both hands per person per frame (truth joints); a hand's bin id is the bin
  whose box (shelf frame, 5 cm margin) contains it, as pose computes it; a hand that touches
  a bin in truth but is outside every box in the joints gets the bin of the contact;
- shelf events: one per truth pick / return / restock (settle stamp, truth start/end and
  delta) with the SKU x quantity candidates a scale gives: every catalog SKU whose
  ``quantity x unit weight`` lies within 3 tolerances of the delta, Gaussian likelihoods,
  normalised (flavours of equal weight stay ambiguous); they arrive ``fusion_latency_s``
  after settling;
- product observations: by default one crop of the bin per shelf event, as product ID
  makes them (stamped with the frame before a pick / after a return, arriving 0.3-3 s
  after the event settled), or (``bin_observations`` False) crops of the hand holding the
  item, 0.4 s after a pick ends / before a return starts; the receiver's hand after a
  hand-off either way. A crop names the true SKU with ``observation_accuracy`` and the
  other SKUs of its category with the rest; with probability ``observation_error_rate``
  (seeded) it names a wrong SKU of the category instead.

``measure`` drives ``AssociationEngine`` with them in event time (advance every 0.1 s of
sim clock), applies its cart events to a real ``Ledger`` (SQLite in a temp dir) with the
visits the gate would open, records each exit at the party's truth exit and issues the
receipt at the first receipt check (every ``receipt_check_period_s``) after the
watermark passed the exit. Then it scores with go_store_nodes.core.evaluation's metrics.
Ids are ``sf-<scenario>-<n>`` (shelf events) and ``po-...`` (observations), never the
truth's. Run: ``python -m go_store_testing.association_feed busy``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import heapq
import json
import math
import pathlib
import tempfile
from typing import Any, Iterable, Optional

import numpy as np

from go_store_nodes.core import association as core
from go_store_nodes.core.evaluation.data import (
    CART_EVENTS_TOPIC,
    ground_truth,
    PredictedCartEvent,
    PredictedReceipt,
    Predictions,
    RECEIPTS_TOPIC,
    SHELF_EVENTS_TOPIC,
)
from go_store_nodes.core.evaluation.metrics import (
    association_metrics,
    cart_line_metrics,
    EvaluationConfig,
    latency_metrics,
    receipt_metrics,
    review_metrics,
)
from go_store_nodes.core.ledger import CartEvent as LedgerCartEvent
from go_store_nodes.core.ledger import HeldForReview, Ledger, LedgerConfig
from go_store_nodes.core.sim.truth import Truth
from go_store_nodes.core.store import StoreDescription

S = 1_000_000_000
HAND_MARGIN_M = 0.05


@dataclass(frozen=True)
class FeedConfig:
    """How the stand-in producers behave."""

    fusion_latency_s: float = 1.0
    observation_latency_s: float = 0.2
    observation_accuracy: float = 0.8
    observation_error_rate: float = 0.05
    # Fusion's start/end differ from the hand contact by this (s, Gaussian sigma).
    timing_jitter_s: float = 0.0
    # True: product ID's bin crops per shelf event (its current output); False: crops of
    # the hand holding the item (which product ID does not make yet).
    bin_observations: bool = True
    step_s: float = 0.1
    receipt_check_period_s: float = 0.1
    seed: int = 0


def _bins_in_shelf_frames(description: StoreDescription) -> list[tuple[Any, Any]]:
    return [(shelf.t_map_shelf.inverse(), bin_) for shelf in description.shelves
            for bin_ in shelf.bins]


def _bin_of(point: list[float], boxes: list[tuple[Any, Any]]) -> str:
    for to_shelf, bin_ in boxes:
        p = to_shelf.apply(point[:3])
        if all(bin_.min_m[i] - HAND_MARGIN_M <= p[i] <= bin_.max_m[i] + HAND_MARGIN_M
               for i in range(3)):
            return str(bin_.bin_id)
    return ''


def weight_candidates(description: StoreDescription, delta_grams: float,
                      max_quantity: int = 6) -> tuple[core.SkuCandidate, ...]:
    """Return the SKU x quantity explanations a scale gives for a weight change."""
    scored = []
    for sku, product in description.catalog.items():
        for quantity in range(1, max_quantity + 1):
            sigma = max(product.weight_tolerance_g * math.sqrt(quantity), 1.0)
            gap = abs(abs(delta_grams) - quantity * product.unit_weight_g)
            if gap <= 3 * sigma:
                scored.append((math.exp(-0.5 * (gap / sigma) ** 2), sku, quantity))
    total = sum(score for score, _, _ in scored)
    scored.sort(key=lambda item: (-item[0], item[1], item[2]))
    return tuple(core.SkuCandidate(sku, q, score / total) for score, sku, q in scored[:12])


class _Arrivals:
    """Inputs ordered by arrival time."""

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, str, Any]] = []
        self.order = 0

    def add(self, at_ns: int, kind: str, payload: Any) -> None:
        heapq.heappush(self.heap, (at_ns, self.order, kind, payload))
        self.order += 1


def build_inputs(truth: Truth, description: StoreDescription, config: FeedConfig
                 ) -> tuple[_Arrivals, dict[str, tuple[str, tuple[int, ...], int]]]:
    """Return the arrivals and account -> (visit id, person ids, check-in stamp)."""
    rng = np.random.default_rng([truth.seed, config.seed])
    arrivals = _Arrivals()
    visits: dict[str, tuple[str, tuple[int, ...], int]] = {}
    visit_of_person: dict[int, tuple[str, str, int]] = {}
    for check_in in truth.check_ins:
        visit_id = f'visit-{check_in.account_id}'
        visits[check_in.account_id] = (visit_id, check_in.person_ids, check_in.stamp_ns)
        for person_id in check_in.person_ids:
            visit_of_person[person_id] = (visit_id, check_in.account_id, check_in.stamp_ns)
    roles = {p.person_id: p.role for p in truth.people}
    boxes = _bins_in_shelf_frames(description)
    contacts = [(e.person_id, e.bin_id, e.start_ns, e.end_ns) for e in truth.events
                if e.bin_id] + [(t.person_id, t.bin_id, t.start_ns, t.end_ns)
                                for t in truth.touches]
    hand_in_bin: dict[tuple[int, str], list[tuple[int, int]]] = {}  # (person, bin) -> stamps
    for frame in truth.frames:
        tracks, skeletons = [], []
        for person in frame.people:
            visit = visit_of_person.get(person.person_id)
            linked = visit is not None and frame.stamp_ns >= visit[2]
            tracks.append(core.TrackIn(
                person.person_id, person.x_m, person.y_m,
                core.ROLE_ASSOCIATE if roles.get(person.person_id) == 'associate'
                else core.ROLE_SHOPPER,
                visit[0] if linked and visit else '', visit[1] if linked and visit else ''))
            left = person.joints['left_hand']
            right = person.joints['right_hand']
            left_bin, right_bin = _bin_of(left, boxes), _bin_of(right, boxes)
            if not left_bin and not right_bin:
                for person_id, bin_id, start, end in contacts:
                    if person_id == person.person_id and start <= frame.stamp_ns <= end:
                        right_bin = bin_id
            for side, bin_id in ((core.HAND_LEFT, left_bin), (core.HAND_RIGHT, right_bin)):
                if bin_id:
                    hand_in_bin.setdefault((person.person_id, bin_id), []).append(
                        (frame.stamp_ns, side))
            skeletons.append(core.SkeletonIn(person.person_id, left_bin, right_bin,
                                             tuple(left[:3]), tuple(right[:3])))
        arrivals.add(frame.stamp_ns, 'tracks', (frame.stamp_ns, tracks))
        arrivals.add(frame.stamp_ns, 'skeletons', (frame.stamp_ns, skeletons))
    by_category: dict[str, list[str]] = {}
    for sku, product in description.catalog.items():
        by_category.setdefault(product.category, []).append(sku)
    number = 0
    for event in truth.events:
        number += 1
        if event.kind in ('pick', 'return', 'restock') and event.bin_id:
            kind = core.PICK if event.kind == 'pick' else core.RETURN
            jitter = rng.normal(0.0, config.timing_jitter_s, 2) * S \
                if config.timing_jitter_s else np.zeros(2)
            start_ns = event.start_ns + int(jitter[0])
            end_ns = max(start_ns, event.end_ns + int(jitter[1]))
            shelf_event = core.ShelfEventIn(
                f'sf-{truth.scenario}-{number}', end_ns, event.shelf_id or '',
                event.bin_id, kind, event.delta_grams, start_ns, end_ns,
                weight_candidates(description, event.delta_grams))
            arrivals.add(event.end_ns + round(config.fusion_latency_s * S), 'shelf',
                         shelf_event)
        bin_crop = config.bin_observations and event.kind != 'hand_off'
        holder = event.to_person_id if event.kind == 'hand_off' else event.person_id
        if bin_crop and event.kind == 'pick':
            seen_ns = event.start_ns - round(0.15 * S)   # the frame before the hand came
        elif bin_crop:
            seen_ns = event.end_ns + round(0.15 * S)     # the frame after it left
        elif event.kind in ('pick', 'hand_off'):
            seen_ns = event.end_ns + round(0.4 * S)
        elif event.kind == 'return':
            seen_ns = event.start_ns - round(0.4 * S)
        else:
            continue
        if holder is None and not bin_crop:
            continue
        category = description.catalog[event.sku].category
        siblings = [s for s in by_category[category] if s != event.sku]
        shown = event.sku
        if siblings and rng.random() < config.observation_error_rate:
            shown = siblings[int(rng.integers(len(siblings)))]
        rest = [s for s in by_category[category] if s != shown]
        skus = [core.SkuCandidate(shown, 1, config.observation_accuracy)]
        skus += [core.SkuCandidate(s, 1, (1 - config.observation_accuracy) / len(rest))
                 for s in rest]
        if bin_crop:
            # Product ID's crop of the bin: published once its after frames are in
            # (up to its 3 s wait after the end), so often after the shelf event.
            observation = core.ProductObservationIn(
                f'sf-{truth.scenario}-{number}/camera', seen_ns, 0, core.HAND_NONE,
                event.bin_id or '', 'camera', category, 0.95, tuple(skus))
            arrive_ns = event.end_ns + round(float(rng.uniform(0.3, 3.0)) * S)
        else:
            # The hand that was in the bin holds the item (the last frame it was there).
            side = core.HAND_RIGHT
            frames = [(abs(stamp - event.end_ns), hand) for stamp, hand in
                      hand_in_bin.get((event.person_id, event.bin_id or ''), [])]
            if frames and event.kind != 'hand_off':
                side = min(frames)[1]
            observation = core.ProductObservationIn(
                f'po-{truth.scenario}-{number}', seen_ns, holder or 0, side, '', 'camera',
                category, 0.95, tuple(skus))
            arrive_ns = seen_ns + round(config.observation_latency_s * S)
        arrivals.add(arrive_ns, 'observations', (seen_ns, [observation]))
    return arrivals, visits


def measure(truth: Truth, description: StoreDescription,
            association: Optional[core.AssociationConfig] = None,
            config: Optional[FeedConfig] = None) -> dict[str, Any]:
    """Play the truth-made inputs through the engine and a ledger; return the metrics."""
    config = config or FeedConfig()
    engine = core.AssociationEngine(association or core.AssociationConfig(),
                                    core.bin_sites(description), core.catalog_of(description))
    arrivals, visits = build_inputs(truth, description, config)
    prices = {sku: p.price_cents for sku, p in description.catalog.items()}
    exits: dict[str, int] = {}
    for account, (_, person_ids, _) in visits.items():
        exit_times = [p.exit_ns for p in truth.people if p.person_id in person_ids]
        if exit_times and all(exit_times):
            exits[account] = max(t for t in exit_times if t)
    cart_events: list[PredictedCartEvent] = []
    reviews: list[tuple[str, str, str]] = []
    receipts: list[PredictedReceipt] = []
    with tempfile.TemporaryDirectory() as folder:
        ledger = Ledger(f'sqlite:///{pathlib.Path(folder) / "ledger.sqlite"}',
                        LedgerConfig(grace_period_ns=0), prices)
        opened: dict[str, str] = {}
        exited: set[str] = set()
        issued: set[str] = set()
        step = round(config.step_s * S)
        check = round(config.receipt_check_period_s * S)
        now = truth.start_ns
        next_check = now
        shelf_count = 0
        while now <= truth.end_ns + 30 * S:
            for account, (_, person_ids, stamp) in visits.items():
                if account not in opened and stamp <= now:
                    ledger.register_account(account, stamp)
                    opened[account] = ledger.open_visit(
                        account, [str(p) for p in person_ids], stamp)
            while arrivals.heap and arrivals.heap[0][0] <= now:
                at_ns, _, kind, payload = heapq.heappop(arrivals.heap)
                if kind == 'tracks':
                    visit_tracks = [
                        core.TrackIn(t.track_id, t.x_m, t.y_m, t.role,
                                     opened.get(t.account_id, ''), t.account_id)
                        if t.account_id else t for t in payload[1]]
                    engine.add_tracks(payload[0], visit_tracks, at_ns)
                elif kind == 'skeletons':
                    engine.add_skeletons(payload[0], payload[1], at_ns)
                elif kind == 'observations':
                    engine.add_observations(payload[0], payload[1], at_ns)
                else:
                    shelf_count += 1
                    engine.add_shelf_event(payload, at_ns)
            for event in engine.advance(now):
                if event.needs_review:
                    reviews.append((event.event_id, event.sku, event.review_reason))
                cart_events.append(PredictedCartEvent(
                    now, event.stamp_ns, event.event_id, event.visit_id, event.account_id,
                    event.track_id, event.sku, event.quantity_delta, event.evidence_ids,
                    event.needs_review))
                ledger.apply_cart_event(LedgerCartEvent(
                    event.event_id, event.visit_id, event.sku, event.quantity_delta,
                    event.stamp_ns, str(event.track_id), event.confidence,
                    event.evidence_ids[:32], event.needs_review, event.review_reason[:64],
                    event.account_id or None), now)
            for account, exit_ns in exits.items():
                if account in opened and account not in exited and exit_ns <= now:
                    ledger.mark_exit(opened[account], exit_ns)
                    exited.add(account)
            if now >= next_check:
                next_check += check
                for account in sorted(exited - issued):
                    if engine.watermark_ns >= exits[account]:
                        visit_id = opened[account]
                        result = ledger.issue_receipt(visit_id, now, force=True)
                        issued.add(account)
                        if isinstance(result, HeldForReview):
                            cart = ledger.get_cart(visit_id)
                            lines = {i.sku: i.quantity for i in cart.items}
                            receipts.append(PredictedReceipt(now, now, visit_id, account,
                                                             False, lines))
                        else:
                            receipts.append(PredictedReceipt(
                                now, now, visit_id, account, True,
                                {i.sku: i.quantity for i in result.items},
                                result.total_cents))
            if not arrivals.heap and engine.pending_count == 0 and exited <= issued and \
                    now > truth.end_ns:
                break
            now += step
        ledger.close()
    predictions = Predictions(
        topic_counts={CART_EVENTS_TOPIC: len(cart_events), RECEIPTS_TOPIC: len(receipts),
                      SHELF_EVENTS_TOPIC: shelf_count},
        receipts=tuple(receipts), cart_events=tuple(cart_events))
    gt = ground_truth(truth)
    metrics = [*association_metrics(gt, predictions, EvaluationConfig()),
               *cart_line_metrics(gt, predictions), *receipt_metrics(gt, predictions),
               *review_metrics(predictions)]
    latency = [m for m in latency_metrics(gt, predictions)
               if m.name.startswith('latency_exit_to_receipt')]
    result: dict[str, Any] = {m.name: m.value for m in [*metrics, *latency]}
    result['visits_with_receipt'] = len(receipts)
    result['visits_exited'] = len(exits)
    result['engine_counters'] = dict(sorted(engine.counters.items()))
    result['association_wrong'] = next(
        (m.detail.get('wrong') for m in metrics if m.name == 'association_accuracy'), None)
    result['review_reasons'] = sorted(reviews)
    return result


def _truth(scenario: str) -> tuple[Truth, StoreDescription]:
    from go_store_nodes.core.sim.scenario import load_scenario
    from go_store_nodes.core.sim.world import Simulation
    from go_store_nodes.core.store import load_store_description

    path = pathlib.Path(scenario)
    if not path.exists():
        path = pathlib.Path(__file__).resolve().parents[1] / 'config' / 'scenarios' / \
            f'{scenario}.yaml'
    loaded = load_scenario(path)
    description = load_store_description(loaded.store_path)
    simulation = Simulation(loaded, description)
    for _ in simulation.run():
        pass
    return simulation.truth, description


def main(argv: Optional[Iterable[str]] = None) -> None:
    """Simulate a scenario (no rendering), measure, print the metrics as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('scenario', help="scenario name ('easy', 'busy') or YAML path")
    parser.add_argument('--observation-error-rate', type=float, default=0.05,
                        help='share of product crops naming a wrong SKU of the category')
    parser.add_argument('--timing-jitter', type=float, default=0.0,
                        help='s (sigma) between the shelf event interval and the contact')
    parser.add_argument('--hand-observations', action='store_true',
                        help='crops of the hand holding the item instead of bin crops')
    args = parser.parse_args(None if argv is None else list(argv))
    truth, description = _truth(args.scenario)
    result = measure(truth, description, config=FeedConfig(
        observation_error_rate=args.observation_error_rate,
        timing_jitter_s=args.timing_jitter, bin_observations=not args.hand_observations))
    print(json.dumps(result, indent=1, default=str))


if __name__ == '__main__':
    main()
