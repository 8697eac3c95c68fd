"""Evaluate an output bag against truth.json: the file edge of core.evaluation."""

from __future__ import annotations

import json
import pathlib

import yaml

from ..core.evaluation import (
    Bound,
    evaluate,
    EvaluationConfig,
    GroundTruth,
    parse_min_metrics,
    parse_truth,
    Predictions,
    Report,
)
from .predictions import load_predictions


def load_run(truth_path: str | pathlib.Path,
             bag: str | pathlib.Path) -> tuple[GroundTruth, Predictions]:
    """Read a truth.json and a replay's output bag."""
    truth = parse_truth(json.loads(pathlib.Path(truth_path).read_text()))
    return truth, load_predictions(bag)


def evaluate_bag(truth_path: str | pathlib.Path, bag: str | pathlib.Path,
                 config: EvaluationConfig | None = None) -> Report:
    """Compute the report of a replay's output bag against a truth.json."""
    return evaluate(*load_run(truth_path, bag), config)


def write_store_map(truth: GroundTruth, predictions: Predictions, report: Report,
                    store_path: str | pathlib.Path, path: str | pathlib.Path,
                    config: EvaluationConfig | None = None) -> pathlib.Path:
    """Draw the store map of a run (core.evaluation.storemap) into a PNG file.

    Raises ValueError when the store description is not the store the truth was
    simulated in.
    """
    from ..core.evaluation.storemap import build_store_map, render_store_map
    from ..core.store import load_store_description
    description = load_store_description(store_path)
    if truth.store and truth.store != description.name:
        raise ValueError(f'{store_path}: store {description.name!r}, but the truth was '
                         f'simulated in {truth.store!r}; give its description with --store')
    metrics = {m.name: m.value for m in report.metrics}
    store_map = build_store_map(truth, predictions, config, metrics)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_store_map(store_map, description))
    return path


def load_min_metrics(path: str | pathlib.Path) -> list[Bound]:
    """Read a min-metrics YAML file."""
    path = pathlib.Path(path)
    return parse_min_metrics(yaml.safe_load(path.read_text()), str(path))


def write_report(report: Report, path: str | pathlib.Path) -> None:
    """Write the report as JSON (NaN written as null)."""
    text = json.dumps(report.to_dict(), indent=2, default=str, allow_nan=True)
    pathlib.Path(path).write_text(text.replace('NaN', 'null') + '\n')
