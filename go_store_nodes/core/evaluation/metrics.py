"""Store-level metrics: receipts, cart lines, shelf events, association, reviews, latency.

Every function returns ``Metric`` values. A metric whose producer published nothing
(no messages on its topic) is ``missing``: it is never computed from the truth.
Cart lines follow the AiFi autocheckout contest protocol: a predicted line is correct
when account, SKU and quantity all match a true line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .data import (
    CART_EVENTS_TOPIC,
    GroundTruth,
    PredictedCartEvent,
    PredictedReceipt,
    PredictedShelfEvent,
    PredictedTrackFrame,
    Predictions,
    RECEIPTS_TOPIC,
    SHELF_EVENTS_TOPIC,
    TRACKS_TOPIC,
    TruthEvent,
)
from .hota import hota, HotaFrame
from .tracking import match_frames, tracking_metrics

NS = 1_000_000_000


@dataclass(frozen=True)
class EvaluationConfig:
    """Matching tolerances of the evaluation."""

    event_time_tolerance_s: float = 2.0      # shelf/cart event vs true settle time
    tracking_distance_m: float = 0.5         # ground-plane match threshold (CLEAR MOT)
    frame_time_tolerance_s: float = 0.0      # 0: half the truth frame period
    # Tangled episodes (identity.py, docs/simulation.md): two true people closer than
    # touch_distance_m for at least tangle_min_s; runs of one pair less than
    # tangle_merge_gap_s apart are one episode; tracks compared over tangle_window_s
    # before its start and after its end.
    touch_distance_m: float = 0.6
    tangle_min_s: float = 0.5
    tangle_merge_gap_s: float = 1.0
    tangle_window_s: float = 2.0

    def __post_init__(self) -> None:
        """Check every tolerance is positive (frame tolerance may be 0 = automatic)."""
        for name in ('event_time_tolerance_s', 'tracking_distance_m', 'touch_distance_m',
                     'tangle_window_s'):
            if not getattr(self, name) > 0.0:
                raise ValueError(f'{name} must be > 0')
        for name in ('frame_time_tolerance_s', 'tangle_min_s', 'tangle_merge_gap_s'):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f'{name} must be >= 0')


@dataclass(frozen=True)
class Metric:
    """One number of the report, or the reason it could not be computed."""

    name: str
    value: float | None
    unit: str = ''
    missing: str = ''
    detail: Mapping[str, Any] = field(default_factory=dict)
    text: str = ''                 # shown instead of the value, e.g. a name and version

    @property
    def available(self) -> bool:
        """Whether the metric has a value."""
        return self.value is not None

    def display(self) -> str:
        """Value as shown in the table."""
        if self.value is None:
            return f'missing ({self.missing})'
        if self.text:
            return self.text
        if float(self.value).is_integer() and self.unit in ('count', ''):
            return str(int(self.value))
        return f'{self.value:.3f}'


def missing(name: str, reason: str, unit: str = '') -> Metric:
    """Return a metric that could not be computed."""
    return Metric(name, None, unit, reason)


def no_messages(name: str, topic: str, unit: str = '') -> Metric:
    """Return a metric whose producer published nothing on ``topic``."""
    return missing(name, f'no {topic} messages', unit)


def _ratio(numerator: int, denominator: int, empty: float = 1.0) -> float:
    return numerator / denominator if denominator else empty


def prf(true_positives: int, predicted: int, expected: int) -> tuple[float, float, float]:
    """Precision, recall and F1; 1.0 when both sides are empty, 0.0 when one is."""
    both_empty = predicted == 0 and expected == 0
    precision = _ratio(true_positives, predicted, 1.0 if both_empty else 0.0)
    recall = _ratio(true_positives, expected, 1.0 if both_empty else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def latest_receipts(receipts: Iterable[PredictedReceipt]) -> list[PredictedReceipt]:
    """Return the last receipt of each visit (a held receipt may be issued later)."""
    latest: dict[str, PredictedReceipt] = {}
    for receipt in sorted(receipts, key=lambda r: r.received_ns):
        latest[receipt.visit_id or f'account:{receipt.account_id}'] = receipt
    return list(latest.values())


def _account_lines(receipts: Iterable[PredictedReceipt]) -> dict[str, dict[str, int]]:
    lines: dict[str, dict[str, int]] = {}
    for receipt in receipts:
        account = lines.setdefault(receipt.account_id, {})
        for sku, quantity in receipt.lines.items():
            account[sku] = account.get(sku, 0) + int(quantity)
    return {a: {s: q for s, q in skus.items() if q > 0} for a, skus in lines.items()}


def _line_set(lines: Mapping[str, Mapping[str, int]]) -> set[tuple[str, str, int]]:
    return {(a, s, int(q)) for a, skus in lines.items() for s, q in skus.items() if q > 0}


def receipt_metrics(truth: GroundTruth, predictions: Predictions) -> list[Metric]:
    """Exact-match rate of issued receipts per account, and unexpected accounts."""
    name = 'receipt_exact_match_rate'
    if not predictions.count(RECEIPTS_TOPIC):
        return [no_messages(name, RECEIPTS_TOPIC, 'ratio'),
                no_messages('receipt_unexpected_accounts', RECEIPTS_TOPIC, 'count')]
    issued = _account_lines(r for r in latest_receipts(predictions.receipts) if r.issued)
    accounts = truth.shopper_accounts()
    per_account = {}
    for account in accounts:
        # An account needs an issued receipt to match, even with nothing bought: a held
        # or missing receipt is not "ready as they walk out".
        expected = dict(truth.receipts.get(account, {}))
        got = issued.get(account)
        per_account[account] = {'expected': expected, 'predicted': got or {},
                                'issued': got is not None,
                                'match': got is not None and expected == got}
    matched = sum(1 for a in per_account.values() if a['match'])
    unexpected = sorted(a for a in issued if a not in set(accounts))
    return [Metric(name, _ratio(matched, len(accounts)), 'ratio',
                   detail={'accounts': per_account, 'matched': matched,
                           'total': len(accounts)}),
            Metric('receipt_unexpected_accounts', float(len(unexpected)), 'count',
                   detail={'accounts': unexpected})]


def _line_metrics(prefix: str, predicted: Mapping[str, Mapping[str, int]],
                  truth: GroundTruth) -> list[Metric]:
    expected_set = _line_set(truth.receipts)
    predicted_set = _line_set(predicted)
    true_positives = len(expected_set & predicted_set)
    precision, recall, f1 = prf(true_positives, len(predicted_set), len(expected_set))
    detail = {'true_positives': true_positives, 'predicted': len(predicted_set),
              'expected': len(expected_set),
              'false_positives': sorted(map(list, predicted_set - expected_set)),
              'false_negatives': sorted(map(list, expected_set - predicted_set))}
    return [Metric(f'{prefix}_precision', precision, 'ratio', detail=detail),
            Metric(f'{prefix}_recall', recall, 'ratio'),
            Metric(f'{prefix}_f1', f1, 'ratio')]


def cart_line_metrics(truth: GroundTruth, predictions: Predictions) -> list[Metric]:
    """Precision/recall/F1 of (account, SKU, quantity) lines of the last receipts."""
    if not predictions.count(RECEIPTS_TOPIC):
        return [no_messages(f'cart_line_{k}', RECEIPTS_TOPIC, 'ratio')
                for k in ('precision', 'recall', 'f1')]
    return _line_metrics('cart_line', _account_lines(latest_receipts(predictions.receipts)),
                         truth)


def unique_cart_events(events: Iterable[PredictedCartEvent]) -> list[PredictedCartEvent]:
    """Cart events with duplicate ids dropped (the ledger applies each id once)."""
    seen: dict[str, PredictedCartEvent] = {}
    for event in sorted(events, key=lambda e: e.received_ns):
        seen.setdefault(event.event_id or f'#{len(seen)}', event)
    return list(seen.values())


def cart_event_line_metrics(truth: GroundTruth, predictions: Predictions) -> list[Metric]:
    """Compute the line metrics on carts summed from cart/events (before the ledger)."""
    if not predictions.count(CART_EVENTS_TOPIC):
        return [no_messages(f'cart_event_line_{k}', CART_EVENTS_TOPIC, 'ratio')
                for k in ('precision', 'recall', 'f1')]
    carts: dict[str, dict[str, int]] = {}
    for event in unique_cart_events(predictions.cart_events):
        cart = carts.setdefault(event.account_id, {})
        cart[event.sku] = cart.get(event.sku, 0) + event.quantity_delta
    return _line_metrics('cart_event_line', carts, truth)


def assign_by_time(truth_ns: Sequence[int], predicted_ns: Sequence[int], tolerance_ns: int,
                   penalty: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Optimal one-to-one (truth index, predicted index) pairs within ``tolerance_ns``.

    ``penalty`` (truth x predicted, in ns) is added to the time difference, e.g. to
    prefer pairs that agree on SKU; pairs over the tolerance never match.
    """
    if not len(truth_ns) or not len(predicted_ns):
        return []
    gap = np.abs(np.asarray(truth_ns, dtype=float)[:, None]
                 - np.asarray(predicted_ns, dtype=float)[None, :])
    cost = gap + (penalty if penalty is not None else 0.0)
    forbidden = gap > tolerance_ns
    big = float(cost[~forbidden].max() + 1.0) * (len(truth_ns) + len(predicted_ns)) \
        if (~forbidden).any() else 1.0
    cost = np.where(forbidden, big, cost)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if not forbidden[r, c]]


def shelf_truth_events(truth: GroundTruth) -> list[TruthEvent]:
    """Return the true events that change a bin's weight (picks, returns, restocks)."""
    return [e for e in truth.events if e.bin_id and e.kind in ('pick', 'return', 'restock')]


def match_shelf_events(truth: GroundTruth, predictions: Predictions,
                       config: EvaluationConfig
                       ) -> tuple[list[TruthEvent], list[PredictedShelfEvent],
                                  list[tuple[TruthEvent, PredictedShelfEvent]]]:
    """Return the true shelf events, predicted ones (duplicate ids dropped), their matches.

    Matched per bin, one to one, by settle time within ``event_time_tolerance_s``.
    """
    expected = shelf_truth_events(truth)
    predicted = list({e.event_id or f'#{i}': e
                      for i, e in enumerate(predictions.shelf_events)}.values())
    tolerance_ns = int(config.event_time_tolerance_s * NS)
    matches: list[tuple[TruthEvent, PredictedShelfEvent]] = []
    for bin_id in sorted({e.bin_id for e in expected} | {p.bin_id for p in predicted}):
        truth_bin = [e for e in expected if e.bin_id == bin_id]
        pred_bin = [p for p in predicted if p.bin_id == bin_id]
        for t, p in assign_by_time([e.settle_ns for e in truth_bin],
                                   [p.stamp_ns for p in pred_bin], tolerance_ns):
            matches.append((truth_bin[t], pred_bin[p]))
    return expected, predicted, matches


def shelf_event_metrics(truth: GroundTruth, predictions: Predictions,
                        config: EvaluationConfig) -> list[Metric]:
    """Precision/recall of shelf events matched by bin and settle time, type accuracy.

    Touches (a hand in a bin that took nothing) are never expected; unmatched predictions
    on a touched bin within the tolerance of the touch are counted in the detail.
    """
    names = ('shelf_event_precision', 'shelf_event_recall', 'shelf_event_type_accuracy')
    if not predictions.count(SHELF_EVENTS_TOPIC):
        return [no_messages(n, SHELF_EVENTS_TOPIC, 'ratio') for n in names]
    expected, predicted, matches = match_shelf_events(truth, predictions, config)
    tolerance_ns = int(config.event_time_tolerance_s * NS)
    precision, recall, _ = prf(len(matches), len(predicted), len(expected))
    right_type = sum(1 for t, p in matches
                     if p.kind == ('pick' if t.kind == 'pick' else 'return'))
    matched_ids = {id(p) for _, p in matches}
    on_touches = sum(1 for p in predicted if id(p) not in matched_ids and any(
        t.bin_id == p.bin_id and t.start_ns - tolerance_ns <= p.stamp_ns
        <= t.end_ns + tolerance_ns for t in truth.touches))
    detail = {'matched': len(matches), 'predicted': len(predicted), 'expected': len(expected),
              'unmatched_truth': sorted({e.event_id for e in expected}
                                        - {t.event_id for t, _ in matches}),
              'unmatched_on_touches': on_touches}
    return [Metric(names[0], precision, 'ratio', detail=detail),
            Metric(names[1], recall, 'ratio'),
            Metric(names[2], _ratio(right_type, len(matches)) if matches else None, 'ratio',
                   '' if matches else 'no matched shelf events')]


def association_metrics(truth: GroundTruth, predictions: Predictions,
                        config: EvaluationConfig) -> list[Metric]:
    """Who took what: share of true shopper picks/returns charged to the right account.

    Cart events are matched to true events by time (penalising a different SKU); a
    match is right when account, SKU and signed quantity all agree.
    """
    name = 'association_accuracy'
    if not predictions.count(CART_EVENTS_TOPIC):
        return [no_messages(name, CART_EVENTS_TOPIC, 'ratio')]
    expected = [e for e in truth.events if e.account_id and e.kind in ('pick', 'return')]
    predicted = unique_cart_events(predictions.cart_events)
    tolerance_ns = int(config.event_time_tolerance_s * NS)
    penalty = np.array([[0.0 if e.sku == p.sku else tolerance_ns / 2 for p in predicted]
                        for e in expected]).reshape(len(expected), len(predicted))
    pairs = assign_by_time([e.settle_ns for e in expected], [p.stamp_ns for p in predicted],
                           tolerance_ns, penalty)
    wrong = []
    right = 0
    for t, p in pairs:
        event, cart = expected[t], predicted[p]
        sign = 1 if event.kind == 'pick' else -1
        if (cart.account_id == event.account_id and cart.sku == event.sku
                and cart.quantity_delta == sign * event.quantity):
            right += 1
        else:
            wrong.append({'truth': event.event_id, 'cart_event': cart.event_id,
                          'account': [event.account_id, cart.account_id],
                          'sku': [event.sku, cart.sku],
                          'quantity': [sign * event.quantity, cart.quantity_delta]})
    return [Metric(name, _ratio(right, len(expected)), 'ratio',
                   detail={'right': right, 'expected': len(expected), 'matched': len(pairs),
                           'wrong': wrong})]


def sku_metrics(truth: GroundTruth, predictions: Predictions,
                config: EvaluationConfig) -> list[Metric]:
    """Which product was taken, from weight alone and after fusion with vision.

    Over true shopper picks and returns matched to a shelf event (``match_shelf_events``):
    ``sku_accuracy_weight_only`` when the shelf event's most likely candidate (load cells
    and planogram only) is the true SKU; ``sku_accuracy_fused`` when the cart event citing
    that shelf event first carries it (one with no such cart event is wrong). Quantity and
    account are scored by ``association_accuracy``, not here.
    """
    names = ('sku_accuracy_weight_only', 'sku_accuracy_fused')
    if not predictions.count(SHELF_EVENTS_TOPIC):
        return [no_messages(n, SHELF_EVENTS_TOPIC, 'ratio') for n in names]
    _, _, matches = match_shelf_events(truth, predictions, config)
    matches = [(t, p) for t, p in matches if t.account_id and t.kind in ('pick', 'return')]
    if not matches:
        return [Metric(n, None, 'ratio', 'no shopper pick or return matched a shelf event')
                for n in names]
    citing: dict[str, PredictedCartEvent] = {}
    for cart in unique_cart_events(predictions.cart_events):
        for evidence in cart.evidence_ids[:1]:
            citing.setdefault(evidence, cart)
    weight_right = fused_right = uncited = 0
    wrong = []
    for event, shelf in matches:
        weight_sku = shelf.candidates[0][0] if shelf.candidates else ''
        cited = citing.get(shelf.event_id)
        fused_sku = cited.sku if cited is not None else ''
        weight_right += weight_sku == event.sku
        fused_right += fused_sku == event.sku
        uncited += cited is None
        if fused_sku != event.sku:
            wrong.append({'truth': event.event_id, 'sku': event.sku, 'weight': weight_sku,
                          'fused': fused_sku})
    detail = {'events': len(matches), 'weight_right': weight_right,
              'fused_right': fused_right, 'without_cart_event': uncited, 'fused_wrong': wrong}
    return [Metric(names[0], _ratio(weight_right, len(matches)), 'ratio', detail=detail),
            Metric(names[1], _ratio(fused_right, len(matches)), 'ratio')]


def review_metrics(predictions: Predictions) -> list[Metric]:
    """Visits flagged for review: a held receipt or a cart event that needs review."""
    if not predictions.count(RECEIPTS_TOPIC) and not predictions.count(CART_EVENTS_TOPIC):
        reason = f'no {RECEIPTS_TOPIC} or {CART_EVENTS_TOPIC} messages'
        return [missing('review_visits', reason, 'count'),
                missing('review_visit_rate', reason, 'ratio')]
    visits = {v.visit_id for v in predictions.visits if v.visit_id}
    visits.update(r.visit_id for r in predictions.receipts if r.visit_id)
    visits.update(e.visit_id for e in predictions.cart_events if e.visit_id)
    flagged = {r.visit_id for r in latest_receipts(predictions.receipts) if not r.issued}
    flagged.update(e.visit_id for e in predictions.cart_events if e.needs_review)
    flagged.discard('')
    return [Metric('review_visits', float(len(flagged)), 'count',
                   detail={'visits': sorted(flagged)}),
            Metric('review_visit_rate', _ratio(len(flagged), len(visits), 0.0), 'ratio')]


def _percentiles(name: str, values_ns: Sequence[int], reason: str) -> list[Metric]:
    if not values_ns:
        return [missing(f'{name}_p50_s', reason, 's'), missing(f'{name}_p99_s', reason, 's')]
    seconds = np.asarray(values_ns, dtype=float) / NS
    detail = {'samples': len(values_ns), 'max_s': float(seconds.max())}
    return [Metric(f'{name}_p50_s', float(np.percentile(seconds, 50)), 's', detail=detail),
            Metric(f'{name}_p99_s', float(np.percentile(seconds, 99)), 's')]


def latency_metrics(truth: GroundTruth, predictions: Predictions) -> list[Metric]:
    """Shelf event -> cart event and exit -> receipt latencies (receive times, sim clock)."""
    metrics = []
    name = 'latency_shelf_to_cart'
    if not predictions.count(SHELF_EVENTS_TOPIC):
        metrics += _percentiles(name, [], f'no {SHELF_EVENTS_TOPIC} messages')
    elif not predictions.count(CART_EVENTS_TOPIC):
        metrics += _percentiles(name, [], f'no {CART_EVENTS_TOPIC} messages')
    else:
        shelf = {e.event_id: e.received_ns for e in predictions.shelf_events}
        values = [cart.received_ns - shelf[evidence]
                  for cart in unique_cart_events(predictions.cart_events)
                  for evidence in cart.evidence_ids[:1] if evidence in shelf]
        metrics += _percentiles(name, values, 'no cart event cites a recorded shelf event')
    name = 'latency_exit_to_receipt'
    if not predictions.count(RECEIPTS_TOPIC):
        metrics += _percentiles(name, [], f'no {RECEIPTS_TOPIC} messages')
    else:
        first: dict[str, int] = {}
        for receipt in sorted(predictions.receipts, key=lambda r: r.received_ns):
            first.setdefault(receipt.account_id, receipt.received_ns)
        values = []
        for account, received_ns in first.items():
            exit_ns = truth.exit_ns(account)
            if exit_ns is not None:
                values.append(received_ns - exit_ns)
        metrics += _percentiles(name, values, 'no receipt of a known account')
    return metrics


def frame_tolerance_ns(truth: GroundTruth, config: EvaluationConfig) -> int:
    """How far (ns) a track frame may be from a truth frame to be compared with it."""
    return int(config.frame_time_tolerance_s * NS) or max(truth.frame_period_ns // 2, 1)


TRACKING_NAMES = (('mota', 'ratio'), ('idf1', 'ratio'), ('id_switches', 'count'),
                  ('motp_m', 'm'))
HOTA_NAMES = (('hota', 'ratio'), ('deta', 'ratio'), ('assa', 'ratio'))


def clear_mot_metrics(prefix: str, truth: GroundTruth, frames: Sequence[PredictedTrackFrame],
                      config: EvaluationConfig) -> list[Metric]:
    """``<prefix>_mota``, ``_idf1``, ``_id_switches`` and ``_motp_m`` of track frames."""
    names = tuple((f'{prefix}_{n}', u) for n, u in TRACKING_NAMES)
    if not truth.frames:
        return [missing(n, 'no frames in truth.json', u) for n, u in names]
    result = tracking_metrics(truth.frames, frames, config.tracking_distance_m,
                              frame_tolerance_ns(truth, config))
    if result is None:
        return [missing(n, 'motmetrics not installed', u) for n, u in names]
    detail = {'false_positives': result.false_positives, 'misses': result.misses,
              'ground_truth_objects': result.ground_truth_objects, 'frames': result.frames,
              'frames_without_tracks_message': result.unmatched_frames,
              'distance_threshold_m': config.tracking_distance_m}

    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    values = (finite(result.mota), finite(result.idf1), float(result.id_switches),
              finite(result.motp_m))
    return [Metric(n, v, u, '' if v is not None else 'undefined (no matches)',
                   detail=detail if n == names[0][0] else {})
            for (n, u), v in zip(names, values, strict=True)]


def hota_metrics(prefix: str, truth: GroundTruth, frames: Sequence[PredictedTrackFrame],
                 config: EvaluationConfig) -> list[Metric]:
    """``<prefix>_hota``, ``_deta`` and ``_assa`` of track frames (``hota.hota``).

    The similarity of a true person and a track is ``1 - distance / tracking_distance_m``
    (0 beyond it), so HOTA's localisation thresholds 0.05..0.95 are distances from 0.95
    to 0.05 times the CLEAR MOT match distance. Truth frames are matched to track
    frames as for MOTA.
    """
    names = tuple((f'{prefix}_{n}', u) for n, u in HOTA_NAMES)
    if not truth.frames:
        return [missing(n, 'no frames in truth.json', u) for n, u in names]
    hota_frames = []
    for frame, hypothesis in zip(truth.frames, match_frames(
            truth.frames, frames, frame_tolerance_ns(truth, config)), strict=True):
        tracks = hypothesis.tracks if hypothesis is not None else ()
        truth_xy = np.array([[p[1], p[2]] for p in frame.positions],
                            dtype=float).reshape(-1, 2)
        track_xy = np.array([[t[1], t[2]] for t in tracks], dtype=float).reshape(-1, 2)
        distance = np.linalg.norm(truth_xy[:, None, :] - track_xy[None, :, :], axis=2)
        hota_frames.append(HotaFrame([p[0] for p in frame.positions], [t[0] for t in tracks],
                                     np.clip(1.0 - distance / config.tracking_distance_m,
                                             0.0, 1.0)))
    result = hota(hota_frames)
    detail = {'loca': result.loca, 'per_alpha': list(result.per_alpha),
              'distance_threshold_m': config.tracking_distance_m}
    return [Metric(names[0][0], result.hota, 'ratio', detail=detail),
            Metric(names[1][0], result.deta, 'ratio'),
            Metric(names[2][0], result.assa, 'ratio')]


def tracking_metric_list(truth: GroundTruth, predictions: Predictions,
                         config: EvaluationConfig) -> list[Metric]:
    """MOTA, IDF1, ID switches and MOTP on the ground plane."""
    if not predictions.count(TRACKS_TOPIC):
        return [no_messages(f'tracking_{n}', TRACKS_TOPIC, u) for n, u in TRACKING_NAMES]
    return clear_mot_metrics('tracking', truth, predictions.track_frames, config)


def tracking_hota_metric_list(truth: GroundTruth, predictions: Predictions,
                              config: EvaluationConfig) -> list[Metric]:
    """HOTA, DetA and AssA on the ground plane (Luiten et al. 2020; ``hota_metrics``)."""
    if not predictions.count(TRACKS_TOPIC):
        return [no_messages(f'tracking_{n}', TRACKS_TOPIC, u) for n, u in HOTA_NAMES]
    return hota_metrics('tracking', truth, predictions.track_frames, config)
