"""Weight fusion measured against simulated truth: shelf-event P/R/F1 and weight-only SKU accuracy.

The load-cell batches come from a bag (``--bag``, the ``/shelves/<shelf>/weights``
topics of a simulated bag, with its ``--truth``) or from a scenario simulated in this
process without rendering (``--scenario``, optionally ``--duration``/``--seed``, several
seeds with ``--seeds``). The core (``ShelfFusion`` with the shipped parameters of
config/go_store.yaml) sees only the batches; the truth is used here to score:

* shelf-event precision, recall, F1 and type accuracy with the evaluation's own
  ``shelf_event_metrics`` (same bin, settle time within ``--tolerance-s``);
* weight-only SKU top-1 accuracy among matched events: the first candidate's SKU is the
  true SKU (and with the true quantity); same-weight flavours cannot be told apart by
  weight, so their share is reported too;
* the unmatched truth events and predictions, with the behaviours and touches near them.

Usage (from the repository root, PYTHONPATH=$PWD):
  python tools/bench_fusion.py --bag /tmp/fusion/busy --truth /tmp/fusion/busy.json
  python tools/bench_fusion.py --scenario busy --seeds 3,4,5 --duration 240
  python tools/bench_fusion.py --bag bags/easy/bag --truth bags/easy/truth.json --json out.json
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Any, Iterator

import numpy as np
import yaml

from go_store_nodes.core.evaluation.data import (
    ground_truth,
    GroundTruth,
    parse_truth,
    PredictedShelfEvent,
    Predictions,
)
from go_store_nodes.core.evaluation.metrics import (
    assign_by_time,
    EvaluationConfig,
    shelf_event_metrics,
    shelf_truth_events,
)
from go_store_nodes.core.fusion import (
    FusionConfig,
    FusionInputError,
    layout_from_store,
    LoadCellSamples,
    ShelfEvent,
    ShelfFusion,
)
from go_store_nodes.core.store import load_store_description, StoreDescription
from go_store_nodes.core.topics import SHELF_EVENTS_TOPIC

REPO = pathlib.Path(__file__).resolve().parents[1]
NS = 1_000_000_000


def shipped_config() -> FusionConfig:
    """FusionConfig from the shelf_fusion section of config/go_store.yaml."""
    from go_store_nodes.nodes.shelf_fusion import CONFIG_PARAMETERS, fusion_config
    params = yaml.safe_load((REPO / 'config' / 'go_store.yaml').read_text())
    values = params['shelf_fusion']['ros__parameters']
    return fusion_config({spec.name: values[spec.name] for _, spec in CONFIG_PARAMETERS})


def bag_batches(bag: pathlib.Path) -> Iterator[LoadCellSamples]:
    """Load-cell batches of a bag in receive order."""
    from go_store_nodes.bagio.reader import messages, summarize
    from go_store_nodes.bagio.topics import LOAD_CELL_BATCH
    topics = [t for t, s in summarize(bag).items() if s.msgtype == LOAD_CELL_BATCH]
    for _, _, msg in messages(bag, topics):
        m: Any = msg
        bins = tuple(m.bin_ids)
        stamp = int(m.header.stamp.sec) * NS + int(m.header.stamp.nanosec)
        yield LoadCellSamples(m.shelf_id, bins, stamp, int(m.sample_period_ns),
                              np.asarray(m.grams, dtype=float).reshape(-1, len(bins)))


def simulated_batches(scenario: str, seed: int | None, duration: float | None,
                      out: dict[str, Any]) -> Iterator[LoadCellSamples]:
    """Load-cell batches of a scenario simulated here (no rendering); truth into ``out``."""
    from dataclasses import replace

    from go_store_nodes.core.sim.scenario import load_scenario
    from go_store_nodes.core.sim.world import Simulation
    path = pathlib.Path(scenario)
    if not path.is_file():
        path = REPO / 'config' / 'scenarios' / f'{scenario}.yaml'
    spec = load_scenario(path)
    if seed is not None:
        spec = replace(spec, seed=seed)
    if duration is not None:
        spec = replace(spec, duration_s=duration)
    simulation = Simulation(spec, load_store_description(spec.store_path))
    for tick in simulation.run():
        for batch in tick.load_cells:
            yield LoadCellSamples(batch.shelf_id, tuple(batch.bin_ids), batch.first_stamp_ns,
                                  batch.period_ns, np.asarray(batch.grams, dtype=float))
    out['truth'] = ground_truth(simulation.truth)
    out['behaviours'] = {e.event_id: list(e.behaviours) for e in simulation.truth.events}


def run_fusion(description: StoreDescription, config: FusionConfig,
               batches: Iterator[LoadCellSamples]) -> tuple[list[ShelfEvent], dict, float]:
    """Feed every batch; return events, counters and CPU seconds spent in the core."""
    fusion = ShelfFusion(config, layout_from_store(description))
    events: list[ShelfEvent] = []
    spent = 0.0
    for batch in batches:
        started = time.process_time()
        try:
            events.extend(fusion.update(batch))
        except FusionInputError as error:
            print(f'dropped: {error}', file=sys.stderr)
        spent += time.process_time() - started
    return events, dict(fusion.counters), spent


def score(truth: GroundTruth, events: list[ShelfEvent], description: StoreDescription,
          tolerance_s: float, behaviours: dict[str, list[str]]) -> dict[str, Any]:
    """Shelf-event metrics (the evaluation's) and weight-only SKU accuracy."""
    predicted = [PredictedShelfEvent(e.end_ns, e.end_ns, e.event_id, e.shelf_id, e.bin_id,
                                     e.event_type, e.delta_grams) for e in events]
    predictions = Predictions({SHELF_EVENTS_TOPIC: len(predicted)},
                              shelf_events=tuple(predicted))
    config = EvaluationConfig(event_time_tolerance_s=tolerance_s)
    metrics = {m.name: m for m in shelf_event_metrics(truth, predictions, config)}
    precision = metrics['shelf_event_precision'].value or 0.0
    recall = metrics['shelf_event_recall'].value or 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    expected = shelf_truth_events(truth)
    tolerance_ns = int(tolerance_s * NS)
    matches = []
    for bin_id in sorted({e.bin_id for e in expected} | {p.bin_id for p in events}):
        truth_bin = [e for e in expected if e.bin_id == bin_id]
        pred_bin = [p for p in events if p.bin_id == bin_id]
        for t, p in assign_by_time([e.settle_ns for e in truth_bin],
                                   [p.end_ns for p in pred_bin], tolerance_ns):
            matches.append((truth_bin[t], pred_bin[p]))
    weights = {sku: p.unit_weight_g for sku, p in description.catalog.items()}
    planogram = {b.bin_id: b.skus for s in description.shelves for b in s.bins}
    sku_right = sku_quantity_right = same_weight = distinct = distinct_right = 0
    wrong = []
    for t, p in matches:
        top = p.candidates[0] if p.candidates else None
        twins = [s for s, w in weights.items() if s != t.sku and
                 abs(w - weights[t.sku]) <= 2.0]
        same_weight += bool(twins)
        # No other SKU of the same weight (within 2 g) in the bin: weight alone can tell.
        alone = not any(s in planogram.get(t.bin_id, ()) for s in twins)
        distinct += alone
        if top is not None and top.sku == t.sku:
            sku_right += 1
            sku_quantity_right += top.quantity == t.quantity
            distinct_right += alone
        else:
            wrong.append({'truth': t.event_id, 'kind': t.kind, 'sku': t.sku,
                          'quantity': t.quantity, 'bin': t.bin_id,
                          'predicted': [top.sku, top.quantity, round(top.likelihood, 3)]
                          if top else None, 'same_weight_skus': len(twins),
                          'behaviours': behaviours.get(t.event_id, [])})
    matched_ids = {id(p) for _, p in matches}
    matched_truth = {t.event_id for t, _ in matches}
    unmatched_truth = [{'id': e.event_id, 'kind': e.kind, 'bin': e.bin_id, 'sku': e.sku,
                        'quantity': e.quantity, 'settle_s': round((e.settle_ns
                                                                   - truth.start_ns) / NS, 2),
                        'behaviours': behaviours.get(e.event_id, [])}
                       for e in expected if e.event_id not in matched_truth]
    unmatched_pred = []
    for p in events:
        if id(p) in matched_ids:
            continue
        touches = [t.touch_id for t in truth.touches if t.bin_id == p.bin_id and
                   t.start_ns - tolerance_ns <= p.end_ns <= t.end_ns + tolerance_ns]
        unmatched_pred.append({'id': p.event_id, 'type': p.event_type,
                               'delta_g': round(p.delta_grams, 1),
                               'settle_s': round((p.end_ns - truth.start_ns) / NS, 2),
                               'touches': touches})
    n = len(matches)
    return {
        'shelf_event_precision': precision, 'shelf_event_recall': recall,
        'shelf_event_f1': f1,
        'shelf_event_type_accuracy': metrics['shelf_event_type_accuracy'].value,
        'expected': len(expected), 'predicted': len(events), 'matched': n,
        'sku_top1_accuracy': sku_right / n if n else None,
        'sku_quantity_top1_accuracy': sku_quantity_right / n if n else None,
        'matched_with_same_weight_skus': same_weight,
        'matched_without_same_weight_in_bin': distinct,
        'sku_top1_accuracy_without_same_weight_in_bin': distinct_right / distinct
        if distinct else None,
        'touches': len(truth.touches),
        'settle_delay_s_mean': float(np.mean([(p.end_ns - t.settle_ns) / NS
                                              for t, p in matches])) if n else None,
        'unmatched_truth': unmatched_truth, 'unmatched_predictions': unmatched_pred,
        'sku_wrong': wrong,
    }


def main(argv: list[str] | None = None) -> int:
    """Run and print the figures (JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--bag', type=pathlib.Path, help='simulated bag folder')
    parser.add_argument('--truth', type=pathlib.Path, help="the bag's truth.json")
    parser.add_argument('--scenario', help='scenario YAML or tier name, simulated here')
    parser.add_argument('--seeds', default='', help='comma-separated seeds (scenario mode)')
    parser.add_argument('--duration', type=float, default=None, help='override duration_s')
    parser.add_argument('--store', type=pathlib.Path, default=REPO / 'config' / 'store.yaml')
    parser.add_argument('--tolerance-s', type=float, default=2.0)
    parser.add_argument('--json', type=pathlib.Path, help='also write the figures here')
    parser.add_argument('--brief', action='store_true', help='leave out the lists')
    args = parser.parse_args(argv)
    description = load_store_description(args.store)
    config = shipped_config()
    runs = []
    if args.bag:
        if not args.truth:
            parser.error('--bag needs --truth')
        document = json.loads(args.truth.read_text())
        behaviours = {e['event_id']: list(e.get('behaviours', ()))
                      for e in document['events']}
        events, counters, spent = run_fusion(description, config, bag_batches(args.bag))
        runs.append(('bag', parse_truth(document), behaviours, events, counters, spent))
    elif args.scenario:
        seeds = [int(s) for s in args.seeds.split(',') if s] or [None]
        for seed in seeds:
            out: dict[str, Any] = {}
            events, counters, spent = run_fusion(
                description, config,
                simulated_batches(args.scenario, seed, args.duration, out))
            runs.append((f'seed {seed}', out['truth'], out['behaviours'], events, counters,
                         spent))
    else:
        parser.error('give --bag and --truth, or --scenario')
    results = {}
    for name, truth, behaviours, events, counters, spent in runs:
        result = score(truth, events, description, args.tolerance_s, behaviours)
        result['core_cpu_s'] = round(spent, 3)
        result['counters'] = counters
        if args.brief:
            for key in ('unmatched_truth', 'unmatched_predictions', 'sku_wrong'):
                result[key] = len(result[key])
        results[name] = result
    text = json.dumps(results, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
