"""Run the gate's logic over a replay's recorded tracks and a bag's scans, offline.

The gate core sees exactly what the gate node saw in the replay (every track snapshot of
the output bag at the time it was recorded, every check-in of the sensor bag at the time
it was played), with a fresh ledger in a temporary folder, and the visit metrics of
``go-store eval`` score what it linked. The gate's settings are the node's, from
config/go_store.yaml (``--params``), overridable with ``--set``. Policy changes of the
gate can be tried in seconds instead of a replay of the whole graph; the figures only
hold for the tracks of that replay.

    PYTHONPATH=$PWD python tools/replay_gate.py --sensors BAG --outputs REPLAY/bag
        --truth truth.json [--set group_window_s=3.0 ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import pathlib
import sys
import tempfile

import yaml

from go_store_nodes.bagio.predictions import load_predictions
from go_store_nodes.bagio.reader import messages
from go_store_nodes.core.evaluation import EvaluationConfig, parse_truth
from go_store_nodes.core.evaluation.data import PredictedVisit
from go_store_nodes.core.evaluation.visits import visit_metrics
from go_store_nodes.core.gate import GateConfig, GateLogic, TrackObservation, VisitStatus
from go_store_nodes.core.ledger import Ledger
from go_store_nodes.core.ledger.tokens import load_public_key
from go_store_nodes.core.store import load_store_description
from go_store_nodes.core.topics import TRACKS_TOPIC

REPO = pathlib.Path(__file__).resolve().parent.parent
ASSOCIATE = 2   # Track.ROLE_ASSOCIATE


def _value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {'true': True, 'false': False}.get(text.lower(), text)


def run(sensors: pathlib.Path, outputs: pathlib.Path, config: GateConfig,
        store_path: pathlib.Path, key_path: pathlib.Path, tail_s: float = 35.0
        ) -> tuple[list, dict[str, int]]:
    """Return the gate's visit updates (with the time they were made) and its counters."""
    store = load_store_description(store_path)
    folder = tempfile.mkdtemp(prefix='replay_gate_')
    ledger = Ledger(f'sqlite:///{folder}/ledger.sqlite')
    gate = GateLogic(store, ledger, load_public_key(key_path), config)
    inputs = [(t, 1, m) for _, t, m in messages(outputs, [TRACKS_TOPIC])]
    inputs += [(t, 0, m) for topic, t, m in messages(sensors) if topic.endswith('/check_in')]
    updates = []
    for now_ns, kind, msg in sorted(inputs, key=lambda item: (item[0], item[1])):
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if kind == 0:
            _, made = gate.check_in(msg.gate_id, msg.token, stamp_ns, now_ns)
        else:
            tracks = [TrackObservation(str(t.track_id), float(t.position.x),
                                       float(t.position.y), t.role == ASSOCIATE,
                                       t.header.stamp.sec * 1_000_000_000
                                       + t.header.stamp.nanosec or None)
                      for t in msg.tracks]
            made = gate.on_tracks(stamp_ns, tracks, now_ns)
        updates += [(now_ns, u) for u in made]
    # The replay's tail: the gate's clock runs on (one tick a second) with no input.
    end_ns = max((t for t, _, _ in inputs), default=0)
    for step in range(1, int(tail_s) + 1):
        now_ns = end_ns + step * 1_000_000_000
        updates += [(now_ns, u) for u in gate.on_clock(now_ns)]
    return updates, gate.counters


def main(argv: list[str] | None = None) -> int:
    """Run the gate offline and print its visit metrics."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sensors', required=True, help='the simulated sensor bag')
    parser.add_argument('--outputs', required=True, help="the replay's output bag")
    parser.add_argument('--truth', required=True, help='truth.json of the sensor bag')
    parser.add_argument('--store', default=str(REPO / 'config' / 'store.yaml'))
    parser.add_argument('--key', default=str(REPO / 'config' / 'demo_keys' /
                                             'store_app_public.pem'))
    parser.add_argument('--tail', type=float, default=35.0,
                        help="s of gate clock after the last input (the replay's tail)")
    parser.add_argument('--params', default=str(REPO / 'config' / 'go_store.yaml'),
                        help="the gate node's parameters (section gate), as a replay runs it")
    parser.add_argument('--set', action='append', default=[], metavar='NAME=VALUE',
                        help='a gate parameter of the params file (s for times)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    params = yaml.safe_load(pathlib.Path(args.params).read_text())['gate']['ros__parameters']
    params.update({k: _value(v) for k, v in (item.split('=', 1) for item in args.set)})
    config = GateConfig.from_parameters(params)
    updates, counters = run(pathlib.Path(args.sensors), pathlib.Path(args.outputs), config,
                            pathlib.Path(args.store), pathlib.Path(args.key), args.tail)
    recorded = load_predictions(args.outputs)
    visits = tuple(PredictedVisit(now_ns, u.stamp_ns, u.visit_id, u.account_id,
                                  u.status is VisitStatus.STARTED,
                                  tuple(int(t) for t in u.track_ids)) for now_ns, u in updates)
    predictions = dataclasses.replace(
        recorded, visits=visits,
        topic_counts={**recorded.topic_counts, '/visits': len(visits)})
    truth = parse_truth(json.loads(pathlib.Path(args.truth).read_text()))
    for metric in visit_metrics(truth, predictions, EvaluationConfig()):
        print(f'{metric.name:24s} {metric.value}  {json.dumps(metric.detail)}')
    print('counters', json.dumps(dict(sorted(counters.items()))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
