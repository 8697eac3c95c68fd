"""Run the tracker offline on a replay's recorded detections; score it beside the peer.

Usage: ``PYTHONPATH=. python tools/replay_tracker.py --outputs REPLAY/bag
--truth truth.json [--set max_lost_s=6 ...] [--no-peer]``

A replay's output bag holds ``/people/detections``, everything the tracker node consumed
but the visits. This feeds the recorded detection arrays, in stamp order, through the
node's own conversion into the core ``Tracker`` (the node's settings from
config/go_store.yaml, overridable with ``--set``) and scores the tracks with the
evaluation's code: MOTA, IDF1, ID switches, HOTA, tangled episodes, roles; and the peer
(norfair) on the same detections. Seconds instead of a replay, so tracker changes can be
compared on the same detections. Visits are not linked (the recorded ones name the
replay's own track ids), so nothing that depends on a track's visit is exercised.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import yaml

from go_store_nodes.bagio.predictions import load_predictions
from go_store_nodes.bagio.reader import messages
from go_store_nodes.core.evaluation import EvaluationConfig, parse_truth
from go_store_nodes.core.evaluation.data import PredictedTrackFrame
from go_store_nodes.core.evaluation.identity import role_metrics, tangle_metrics
from go_store_nodes.core.evaluation.metrics import clear_mot_metrics, hota_metrics
from go_store_nodes.core.evaluation.report import peer_metrics
from go_store_nodes.core.store import load_store_description
from go_store_nodes.core.tracker import Tracker, TrackerInputError, zones_from_store
from go_store_nodes.nodes.tracker import tracker_config
from go_store_nodes.ros.ledger_conversions import stamp_to_ns
from go_store_nodes.ros.tracker_conversions import core_detections

REPO = pathlib.Path(__file__).resolve().parents[1]


def run(outputs: pathlib.Path, params: dict, store_path: pathlib.Path
        ) -> tuple[list[PredictedTrackFrame], dict[str, int]]:
    """Track the recorded detections; return the track frames and the core's counters."""
    tracker = Tracker(tracker_config(params), zones_from_store(load_store_description(
        store_path)))
    arrays = sorted(((stamp_to_ns(m.header.stamp), m)
                     for _, _, m in messages(outputs, ['/people/detections'])),
                    key=lambda item: item[0])
    frames = []
    for stamp_ns, msg in arrays:
        try:
            tracks = tracker.update(core_detections(msg), stamp_ns)
        except TrackerInputError as error:
            print(f'dropped a detection array: {error}', file=sys.stderr)
            continue
        frames.append(PredictedTrackFrame(
            stamp_ns, tuple((t.track_id, float(t.position[0]), float(t.position[1]))
                            for t in tracks),
            tuple(t.role or 'unknown' for t in tracks)))
    return frames, dict(tracker.counters)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, track, print ours and the peer's metrics and the counters."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--outputs', required=True, help="the replay's output bag")
    parser.add_argument('--truth', required=True, help='truth.json of the sensor bag')
    parser.add_argument('--store', default=str(REPO / 'config' / 'store.yaml'))
    parser.add_argument('--params', default=str(REPO / 'config' / 'go_store.yaml'))
    parser.add_argument('--set', action='append', default=[], metavar='NAME=VALUE',
                        help='a tracker parameter of the params file')
    parser.add_argument('--no-peer', action='store_true', help='do not run the peer')
    args = parser.parse_args(argv)
    params = dict(yaml.safe_load(pathlib.Path(args.params).read_text())
                  ['tracker']['ros__parameters'])
    for item in args.set:
        name, value = item.split('=', 1)
        params[name] = type(params[name])(value) if name in params else float(value)
    frames, counters = run(pathlib.Path(args.outputs), params, pathlib.Path(args.store))
    truth = parse_truth(json.loads(pathlib.Path(args.truth).read_text()))
    config = EvaluationConfig()
    metrics = (clear_mot_metrics('tracking', truth, frames, config)
               + hota_metrics('tracking', truth, frames, config)
               + tangle_metrics('', truth, frames, config)
               + role_metrics(truth, frames, config))
    if not args.no_peer:
        recorded = load_predictions(args.outputs)
        metrics += peer_metrics(truth, recorded, config)
    for metric in metrics:
        if metric.text:
            print(f'{metric.name:36s} {metric.text}')
        elif metric.value is not None:
            print(f'{metric.name:36s} {metric.value:.3f}')
    print('counters', json.dumps(dict(sorted(counters.items()))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
