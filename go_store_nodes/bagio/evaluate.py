"""Evaluate an output bag against truth.json: the file edge of core.evaluation."""

from __future__ import annotations

import json
import pathlib

import yaml

from ..core.evaluation import (
    Bound,
    evaluate,
    EvaluationConfig,
    parse_min_metrics,
    parse_truth,
    Report,
)
from .predictions import load_predictions


def evaluate_bag(truth_path: str | pathlib.Path, bag: str | pathlib.Path,
                 config: EvaluationConfig | None = None) -> Report:
    """Compute the report of a replay's output bag against a truth.json."""
    truth = parse_truth(json.loads(pathlib.Path(truth_path).read_text()))
    return evaluate(truth, load_predictions(bag), config)


def load_min_metrics(path: str | pathlib.Path) -> list[Bound]:
    """Read a min-metrics YAML file."""
    path = pathlib.Path(path)
    return parse_min_metrics(yaml.safe_load(path.read_text()), str(path))


def write_report(report: Report, path: str | pathlib.Path) -> None:
    """Write the report as JSON (NaN written as null)."""
    text = json.dumps(report.to_dict(), indent=2, default=str, allow_nan=True)
    pathlib.Path(path).write_text(text.replace('NaN', 'null') + '\n')
