"""Evaluation of a replay against the simulator's truth: pure, no ROS.

``parse_truth`` reads truth.json, the edge converts the output bag into
``Predictions``, ``evaluate`` computes every metric into a ``Report``.
"""

from .data import (
    GroundTruth,
    parse_truth,
    Predictions,
    TRUTH_FEED_EVENT_PREFIX,
    TruthDerivedOutputError,
    TruthFormatError,
)
from .metrics import EvaluationConfig, Metric
from .report import (
    Bound,
    check_bounds,
    evaluate,
    MinMetricsError,
    parse_min_metrics,
    Report,
    truth_derived_ids,
)

__all__ = ['Bound', 'check_bounds', 'evaluate', 'EvaluationConfig', 'GroundTruth', 'Metric',
           'MinMetricsError', 'parse_min_metrics', 'parse_truth', 'Predictions', 'Report',
           'TRUTH_FEED_EVENT_PREFIX', 'truth_derived_ids', 'TruthDerivedOutputError',
           'TruthFormatError']
