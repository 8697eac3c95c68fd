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
from .metrics import (
    association_metrics,
    cart_event_line_metrics,
    cart_line_metrics,
    EvaluationConfig,
    latency_metrics,
    Metric,
    missing,
    no_messages,
    receipt_metrics,
    review_metrics,
    shelf_event_metrics,
    tracking_hota_metric_list,
    tracking_metric_list,
)
from .visits import visit_metrics

REPORT_FORMAT = 1
COUNTED_TOPICS = (TRACKS_TOPIC, SHELF_EVENTS_TOPIC, CART_EVENTS_TOPIC, VISITS_TOPIC,
                  RECEIPTS_TOPIC, CHECK_IN_RESULT_TOPIC, CALIBRATION_STATUS_TOPIC)


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
        return '\n'.join(lines)


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
    metrics += association_metrics(truth, predictions, config)
    metrics += tracking_metric_list(truth, predictions, config)
    metrics += tracking_hota_metric_list(truth, predictions, config)
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
