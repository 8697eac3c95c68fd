"""The evaluation report: every metric, a printable table, JSON, and min-metrics checks.

A min-metrics file (YAML) names metrics with bounds; a named metric that is missing
fails, metrics it does not name never fail::

    metrics:
      real_time_factor: {min: 0.5}
      messages./calibration/status: {min: 1}
      latency_exit_to_receipt_p99_s: {max: 5.0}
      tracking_mota: {present: true}
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any, Mapping, Sequence

from .data import (
    CALIBRATION_STATUS_TOPIC,
    CART_EVENTS_TOPIC,
    CHECK_IN_RESULT_TOPIC,
    DETECTIONS_TOPIC,
    GroundTruth,
    Predictions,
    RECEIPTS_TOPIC,
    SHELF_EVENTS_TOPIC,
    TRACKS_TOPIC,
    TRUTH_FEED_EVENT_PREFIX,
    TruthDerivedOutputError,
    VISITS_TOPIC,
)
from .hands import hand_in_bin_metrics
from .identity import role_metrics, tangle_metrics
from .metrics import (
    association_metrics,
    cart_event_line_metrics,
    cart_line_metrics,
    clear_mot_metrics,
    EvaluationConfig,
    hota_metrics,
    HOTA_NAMES,
    latency_metrics,
    Metric,
    missing,
    no_messages,
    receipt_metrics,
    review_metrics,
    shelf_event_metrics,
    sku_metrics,
    tracking_hota_metric_list,
    tracking_metric_list,
    TRACKING_NAMES,
)
from .peer import PeerTrackerConfig, track_detections
from .visits import visit_metrics

REPORT_FORMAT = 1
COUNTED_TOPICS = (DETECTIONS_TOPIC, TRACKS_TOPIC, SHELF_EVENTS_TOPIC, CART_EVENTS_TOPIC,
                  VISITS_TOPIC, RECEIPTS_TOPIC, CHECK_IN_RESULT_TOPIC, CALIBRATION_STATUS_TOPIC)
# go_store's tracking metrics and the peer tracker's, printed side by side under the table.
COMPARED = ('tracking_mota', 'tracking_idf1', 'tracking_hota', 'tracking_id_switches',
            'tangled_episodes_both_right')
PEER_PREFIX = 'peer_'


class MinMetricsError(ValueError):
    """A min-metrics file is malformed."""


@dataclass(frozen=True)
class Report:
    """All metrics of one run, in table order."""

    scenario: str
    metrics: tuple[Metric, ...]

    def get(self, name: str) -> Metric | None:
        """Return the metric called ``name``, or None."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready document: values, missing reasons and details."""
        return {'format': REPORT_FORMAT, 'scenario': self.scenario, 'metrics': {
            m.name: {'value': m.value, 'unit': m.unit,
                     **({'missing': m.missing} if m.value is None else {}),
                     **({'text': m.text} if m.text else {}),
                     **({'detail': dict(m.detail)} if m.detail else {})}
            for m in self.metrics}}

    def table(self) -> str:
        """Plain-text table: metric, value, unit."""
        width = max(len(m.name) for m in self.metrics) if self.metrics else 10
        lines = [f'{"metric":<{width}}  value', f'{"-" * width}  {"-" * 30}']
        for metric in self.metrics:
            unit = f' {metric.unit}' if metric.value is not None and metric.unit not in (
                'ratio', 'count', '') else ''
            lines.append(f'{metric.name:<{width}}  {metric.display()}{unit}')
        return '\n'.join(lines + self.comparison())

    def comparison(self) -> list[str]:
        """go_store's tracking metrics beside the peer tracker's (none without a peer)."""
        peer = self.get(f'{PEER_PREFIX}tracker')
        if peer is None or peer.value is None:
            return []
        rows = [(name, self.get(name), self.get(PEER_PREFIX + name)) for name in COMPARED]
        width = max(len(name) for name in COMPARED)
        header = f'peer: {peer.display()}'
        lines = ['', f'{"tracker comparison":<{width}}  {"go_store":<12}  {header}',
                 f'{"-" * width}  {"-" * 12}  {"-" * len(header)}']
        for name, ours, theirs in rows:
            shown = [m.display() if m is not None and m.value is not None else '-'
                     for m in (ours, theirs)]
            lines.append(f'{name:<{width}}  {shown[0]:<12}  {shown[1]}')
        return lines


def structural_metrics(truth: GroundTruth, predictions: Predictions) -> list[Metric]:
    """Message counts, check-in results and the replay's real-time factor."""
    metrics = [Metric(f'messages.{topic}', float(predictions.count(topic)), 'count')
               for topic in COUNTED_TOPICS]
    if predictions.count(CHECK_IN_RESULT_TOPIC):
        results = predictions.check_ins_accepted + predictions.check_ins_refused
        metrics.append(Metric('check_in_accepted_rate',
                              predictions.check_ins_accepted / results if results else 0.0,
                              'ratio', detail={'results': results,
                                               'scans_in_truth': truth.check_in_count}))
    else:
        metrics.append(no_messages('check_in_accepted_rate', CHECK_IN_RESULT_TOPIC, 'ratio'))
    if predictions.real_time_factor is None:
        metrics.append(missing('real_time_factor', 'no replay timing in the bag', 'x'))
    else:
        metrics.append(Metric('real_time_factor', float(predictions.real_time_factor), 'x'))
    return metrics


def peer_metrics(truth: GroundTruth, predictions: Predictions,
                 config: EvaluationConfig) -> list[Metric]:
    """Score the peer tracker on the recorded detections as go_store's tracks are scored.

    ``peer.track_detections`` runs it; ``peer_tracker`` names it (distribution and
    version), then ``peer_tracking_*`` and ``peer_tangled_episodes*``.
    """
    prefix = f'{PEER_PREFIX}tracking'
    names = ([(f'{PEER_PREFIX}tracker', '')]
             + [(f'{prefix}_{n}', u) for n, u in TRACKING_NAMES + HOTA_NAMES]
             + [(f'{PEER_PREFIX}tangled_episodes', 'count'),
                (f'{PEER_PREFIX}tangled_episodes_both_right', 'ratio')])
    if not predictions.count(DETECTIONS_TOPIC):
        return [no_messages(n, DETECTIONS_TOPIC, u) for n, u in names]
    run = track_detections(predictions.detection_frames,
                           PeerTrackerConfig(distance_threshold_m=config.tracking_distance_m))
    if run is None:
        return [missing(n, 'norfair not installed', u) for n, u in names]
    tracker = Metric(names[0][0], 1.0, '', text=run.name,
                     detail={**run.settings, 'frames': len(run.frames),
                             'dropped_frames': run.dropped_frames})
    return ([tracker] + clear_mot_metrics(prefix, truth, run.frames, config)
            + hota_metrics(prefix, truth, run.frames, config)
            + tangle_metrics(PEER_PREFIX, truth, run.frames, config))


def identity_metrics(truth: GroundTruth, predictions: Predictions,
                     config: EvaluationConfig) -> list[Metric]:
    """Roles (associate or shopper) and tangled episodes of go_store's tracks."""
    if not predictions.count(TRACKS_TOPIC):
        return [no_messages(n, TRACKS_TOPIC, u) for n, u in (
            ('associate_classification_accuracy', 'ratio'),
            ('associate_classification_associates', 'ratio'),
            ('associate_classification_shoppers', 'ratio'),
            ('tangled_episodes', 'count'), ('tangled_episodes_both_right', 'ratio'))]
    return (role_metrics(truth, predictions.track_frames, config)
            + tangle_metrics('', truth, predictions.track_frames, config))


def truth_derived_ids(truth: GroundTruth, predictions: Predictions) -> list[str]:
    """Return the output event ids that come from ground truth, not from perception.

    Ids of the truth-fed test harness (``TRUTH_FEED_EVENT_PREFIX``) and ids equal to a
    truth event id: neither can come from sensors, so a run carrying them measures
    nothing.
    """
    truth_ids = {event.event_id for event in truth.events}
    ids = [e.event_id for e in predictions.cart_events]
    ids += [e.event_id for e in predictions.shelf_events]
    ids += [evidence for e in predictions.cart_events for evidence in e.evidence_ids]
    return sorted({i for i in ids if i.startswith(TRUTH_FEED_EVENT_PREFIX) or i in truth_ids})


def evaluate(truth: GroundTruth, predictions: Predictions,
             config: EvaluationConfig | None = None) -> Report:
    """Compute every metric of a run.

    Raises ``TruthDerivedOutputError`` when the output carries event ids taken from
    ground truth (``truth_derived_ids``): such a run is refused, not scored.
    """
    derived = truth_derived_ids(truth, predictions)
    if derived:
        shown = ', '.join(derived[:5]) + (' ...' if len(derived) > 5 else '')
        raise TruthDerivedOutputError(
            f'{len(derived)} output event id(s) come from ground truth, not from the '
            f'sensors ({shown}); refusing to score this run')
    config = config or EvaluationConfig()
    metrics: list[Metric] = []
    metrics += receipt_metrics(truth, predictions)
    metrics += cart_line_metrics(truth, predictions)
    metrics += cart_event_line_metrics(truth, predictions)
    metrics += shelf_event_metrics(truth, predictions, config)
    metrics += sku_metrics(truth, predictions, config)
    metrics += association_metrics(truth, predictions, config)
    metrics += tracking_metric_list(truth, predictions, config)
    metrics += tracking_hota_metric_list(truth, predictions, config)
    metrics += identity_metrics(truth, predictions, config)
    metrics += peer_metrics(truth, predictions, config)
    metrics += visit_metrics(truth, predictions, config)
    metrics += hand_in_bin_metrics(truth, predictions, config)
    metrics += review_metrics(predictions)
    metrics += latency_metrics(truth, predictions)
    metrics += structural_metrics(truth, predictions)
    return Report(truth.scenario, tuple(metrics))


@dataclass(frozen=True)
class Bound:
    """What a min-metrics file asks of one metric."""

    name: str
    minimum: float | None = None
    maximum: float | None = None


def parse_min_metrics(document: Any, source: str = '<min-metrics>') -> list[Bound]:
    """Read ``{metrics: {name: {min: x, max: y, present: true}}}``."""
    if not isinstance(document, Mapping) or not isinstance(document.get('metrics'), Mapping):
        raise MinMetricsError(f'{source}: expected a mapping with a "metrics" mapping')
    bounds = []
    for name, spec in document['metrics'].items():
        if not isinstance(spec, Mapping) or not set(spec) <= {'min', 'max', 'present'} \
                or not spec:
            raise MinMetricsError(f'{source}: metrics.{name}: give min, max and/or present')
        values = {}
        for key in ('min', 'max'):
            value = spec.get(key)
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                raise MinMetricsError(f'{source}: metrics.{name}.{key} must be a number')
            values[key] = None if value is None else float(value)
        if 'present' in spec and spec['present'] is not True:
            raise MinMetricsError(f'{source}: metrics.{name}.present can only be true')
        bounds.append(Bound(str(name), values['min'], values['max']))
    return bounds


def check_bounds(report: Report, bounds: Sequence[Bound]) -> list[str]:
    """Failures (one line each) of the report against the bounds; [] when all pass."""
    failures = []
    for bound in bounds:
        metric = report.get(bound.name)
        if metric is None:
            failures.append(f'{bound.name}: no such metric')
        elif metric.value is None:
            failures.append(f'{bound.name}: missing ({metric.missing})')
        elif math.isnan(metric.value):
            failures.append(f'{bound.name}: not a number')
        elif bound.minimum is not None and metric.value < bound.minimum:
            failures.append(f'{bound.name}: {metric.display()} < min {bound.minimum:g}')
        elif bound.maximum is not None and metric.value > bound.maximum:
            failures.append(f'{bound.name}: {metric.display()} > max {bound.maximum:g}')
    return failures
