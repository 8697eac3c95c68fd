"""Evaluation of a replay against the simulator's truth: pure, no ROS.

``parse_truth`` reads truth.json, the edge converts the output bag into
``Predictions``, ``evaluate`` computes every metric into a ``Report``.
"""

from .data import GroundTruth, parse_truth, Predictions, TruthFormatError
from .metrics import EvaluationConfig, Metric
from .report import (
    Bound,
    check_bounds,
    evaluate,
    MinMetricsError,
    parse_min_metrics,
    Report,
)

__all__ = ['Bound', 'check_bounds', 'evaluate', 'EvaluationConfig', 'GroundTruth', 'Metric',
           'MinMetricsError', 'parse_min_metrics', 'parse_truth', 'Predictions', 'Report',
           'TruthFormatError']
