"""Run the association engine offline on a replay's recorded inputs; print its metrics.

Usage: ``PYTHONPATH=. python tools/replay_association.py --outputs REPLAY/bag
--truth truth.json [--set ambiguous_person_ratio=0.7 ...] [--without carried ...]``

A replay's output bag holds everything the association node consumed: shelf events,
product observations, skeletons, tracks and visits. This feeds them, in the order and at
the times they were recorded, through the node's own message conversions into
``AssociationEngine`` (the node's settings from config/go_store.yaml, overridable with
``--set``), advances it every ``tick_period_s`` and scores the cart events it makes with
the evaluation's association and cart-event line metrics, in a few seconds instead of a
replay. The ledger and the receipts are not run: held receipts and review counts come
only from a real replay. Product observations are fed one group per shelf event, as the
product_id node publishes them (a recording from before it did is regrouped).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys

import yaml

from go_store_nodes.bagio.predictions import load_predictions
from go_store_nodes.bagio.reader import messages
from go_store_nodes.core import association as core
from go_store_nodes.core.evaluation import EvaluationConfig, parse_truth
from go_store_nodes.core.evaluation.data import PredictedCartEvent
from go_store_nodes.core.evaluation.metrics import (
    association_metrics,
    cart_event_line_metrics,
    sku_metrics,
)
from go_store_nodes.core.store import load_store_description
from go_store_nodes.nodes.association import (
    observations_from_msg,
    shelf_event_from_msg,
    skeletons_from_msg,
    tracks_from_msg,
)
from go_store_nodes.ros.ledger_conversions import stamp_to_ns

REPO = pathlib.Path(__file__).resolve().parents[1]
TOPICS = ('/shelves/events', '/products/observations', '/people/skeletons',
          '/people/tracks', '/visits')
CONFIG_KEYS = ('max_input_wait_s', 'input_margin_s', 'shelf_event_latency_s',
               'reach_distance_m', 'ambiguous_person_ratio', 'min_sku_probability',
               'not_in_cart_prior', 'hand_observation_weight', 'carried_observation_weight',
               'hand_off_distance_m')
VISIT_STARTED, VISIT_ENDED = 1, 2   # go_store/Visit status constants


def node_settings(params_path: pathlib.Path) -> dict:
    """Return the association node's parameters of a params file."""
    document = yaml.safe_load(params_path.read_text())
    return dict(document['association']['ros__parameters'])


def regroup_observations(recorded: list) -> list:
    """Return the recording with the product observations of each shelf event in one item.

    The product_id node publishes all of an event's observations in one array; a
    recording made when it published one array per capture time is regrouped so, each
    event's observations arriving when the last of them was recorded. Observation items
    become lists of ``ProductObservationIn``.
    """
    last_ns: dict[str, int] = {}
    members: dict[str, list] = {}
    others = []
    for received_ns, topic, msg in recorded:
        if topic != '/products/observations':
            others.append((received_ns, topic, msg))
            continue
        for observation in observations_from_msg(msg):
            # '<event id>/<camera id>[/hand...]': the event is what precedes the camera.
            event_id = observation.observation_id.split(f'/{observation.camera_id}')[0]
            last_ns[event_id] = received_ns     # the recording is in time order
            members.setdefault(event_id, []).append(observation)
    others += [(last_ns[e], '/products/observations', group) for e, group in members.items()]
    return sorted(others, key=lambda item: item[0])


KINDS = {'bin': (core.HAND_NONE,), 'hand': (core.HAND_LEFT, core.HAND_RIGHT),
         'carried': (core.HAND_CARRIED,)}


def run(outputs: pathlib.Path, config: core.AssociationConfig, store_path: pathlib.Path,
        tick_ns: int, without: tuple[str, ...] = ()
        ) -> tuple[list[core.CartEventOut], dict[str, int], list[str]]:
    """Feed the recorded inputs through the engine; return its events, counters, notes.

    ``without`` names kinds of product observation left out ('bin', 'hand', 'carried').
    """
    dropped = {hand for kind in without for hand in KINDS[kind]}
    description = load_store_description(store_path)
    engine = core.AssociationEngine(config, core.bin_sites(description),
                                    core.catalog_of(description))
    recorded = regroup_observations(sorted(
        ((t, topic, m) for topic, t, m in messages(outputs, list(TOPICS))),
        key=lambda item: item[0]))
    made: list[core.CartEventOut] = []
    next_tick = recorded[0][0] if recorded else 0
    for now_ns, topic, msg in recorded:
        while next_tick <= now_ns:
            made += engine.advance(next_tick)
            next_tick += tick_ns
        if topic == '/shelves/events':
            try:
                engine.add_shelf_event(shelf_event_from_msg(msg), now_ns)
            except core.InputRejectedError as error:
                print(f'dropped: {error}', file=sys.stderr)
        elif topic == '/products/observations':     # one shelf event's group (above)
            kept = [o for o in msg if o.hand not in dropped]
            if kept:
                engine.add_observations(max(o.stamp_ns for o in kept), kept, now_ns)
        elif topic == '/people/skeletons':
            engine.add_skeletons(stamp_to_ns(msg.header.stamp), skeletons_from_msg(msg), now_ns)
        elif topic == '/people/tracks':
            engine.add_tracks(stamp_to_ns(msg.header.stamp), tracks_from_msg(msg), now_ns)
        elif msg.visit_id and msg.status == VISIT_ENDED:
            engine.end_visit(msg.visit_id, now_ns)
        elif msg.visit_id and msg.status == VISIT_STARTED:
            engine.add_visit(msg.visit_id, msg.account_id, [int(t) for t in msg.track_ids])
    # The replay's tail: the clock runs on until every shelf event is resolved.
    for _ in range(int(60 * 1e9 / tick_ns)):
        made += engine.advance(next_tick)
        next_tick += tick_ns
    return made, dict(engine.counters), engine.drain_messages()


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print the metrics and the engine's counters."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--outputs', required=True, help="the replay's output bag")
    parser.add_argument('--truth', required=True, help='truth.json of the sensor bag')
    parser.add_argument('--store', default=str(REPO / 'config' / 'store.yaml'))
    parser.add_argument('--params', default=str(REPO / 'config' / 'go_store.yaml'))
    parser.add_argument('--set', action='append', default=[], metavar='NAME=VALUE',
                        help='an AssociationConfig field')
    parser.add_argument('--events', action='store_true', help='print every cart event')
    parser.add_argument('--without', action='append', default=[], choices=sorted(KINDS),
                        help='leave out product observations of this kind (repeatable)')
    args = parser.parse_args(argv)
    settings = node_settings(pathlib.Path(args.params))
    config = core.AssociationConfig(**{k: settings[k] for k in CONFIG_KEYS})
    overrides = {k: float(v) for k, v in (item.split('=', 1) for item in args.set)}
    config = dataclasses.replace(config, **overrides)
    tick_ns = round(float(settings['tick_period_s']) * 1e9)
    made, counters, notes = run(pathlib.Path(args.outputs), config, pathlib.Path(args.store),
                                tick_ns, tuple(args.without))
    cart_events = tuple(PredictedCartEvent(
        0, e.stamp_ns, e.event_id, e.visit_id, e.account_id, e.track_id, e.sku,
        e.quantity_delta, tuple(e.evidence_ids), e.needs_review) for e in made)
    predictions = dataclasses.replace(
        load_predictions(args.outputs), cart_events=cart_events)
    truth = parse_truth(json.loads(pathlib.Path(args.truth).read_text()))
    if args.events:
        for event in made:
            print(f'{event.event_id:55s} {event.account_id:10s} {event.sku:28s} '
                  f'{event.quantity_delta:+d} {event.review_reason}')
        for note in notes:
            print(f'note: {note}')
    for metric in [*sku_metrics(truth, predictions, EvaluationConfig()),
                   *association_metrics(truth, predictions, EvaluationConfig()),
                   *cart_event_line_metrics(truth, predictions)]:
        print(f'{metric.name:28s} {metric.value:.3f}')
    print('counters', json.dumps(dict(sorted(counters.items()))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
