"""Benchmark the store view: cost and size of one marker array for a crowd.

``PYTHONPATH=. python tools/bench_visualization.py [--people 1,10,20,40] [--sets 100]``
puts N people in the reference store (half walking a loop at 1 m/s, half standing at
shelf fronts with a stick figure and a hand in a bin, one pair tangled) at 15 Hz with a
shelf event and a cart event per second, and times what the node does per published
set: ``StoreView.markers`` (the core), ``marker_array_msg`` (the conversion) and CDR
serialisation (what ``publish`` does). Reported: ms per set for each step (median),
markers per set and serialised bytes per MarkerArray.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import statistics
import time

from rclpy.serialization import serialize_message

from go_store_nodes.core.store import load_store_description
from go_store_nodes.core.visualization import (
    CartEventIn,
    ShelfEventIn,
    SkeletonIn,
    StoreView,
    TrackIn,
    VisualizationConfig,
)
from go_store_nodes.nodes.visualization import marker_array_msg

REPO = pathlib.Path(__file__).resolve().parents[1]
PERIOD_NS = round(1e9 / 15.0)
T0 = 1_700_000_000 * 10 ** 9


def run(people: int, sets: int) -> dict[str, float]:
    """Time ``sets`` marker arrays of a store with ``people`` walking; return medians."""
    description = load_store_description(REPO / 'config' / 'store.yaml')
    view = StoreView(VisualizationConfig(), description)
    bins = sorted(description.bins())
    width, depth = description.size_m
    radius = min(width, depth) / 3
    fronts = [tuple(float(v) for v in shelf.t_map_shelf.apply([0.0, -0.4, 0.0])[:2])
              for shelf in description.shelves]
    core_ms, convert_ms, serialize_ms, sizes, counts = [], [], [], [], []
    for index in range(sets):
        now = T0 + index * PERIOD_NS
        tracks, figures = [], []
        for person in range(people):
            if person % 2:           # walking a loop at 1 m/s
                angle = person + 1.0 * index / 15.0 / radius
                x = width / 2 + radius * math.cos(angle)
                y = depth / 2 + radius * math.sin(angle)
            else:                    # standing at a shelf front, swaying by 1 cm
                x, y = fronts[person % len(fronts)]
                x += 0.01 * math.sin(index + person)
            tangled = (person + 1,) if person == 0 and people > 1 else \
                (0,) if person == 1 else ()
            tracks.append(TrackIn(person + 1, x, y, 1.7, 0.95, bool(tangled),
                                  tuple(t + 1 for t in tangled), 1, f'v{person}',
                                  f'acct_{person}'))
            if person % 2 == 0:
                figures.append(SkeletonIn(person + 1, {
                    'head': (x, y, 1.6), 'neck': (x, y, 1.45),
                    'left_shoulder': (x - 0.2, y, 1.4), 'right_shoulder': (x + 0.2, y, 1.4),
                    'left_elbow': (x - 0.3, y + 0.1, 1.2), 'right_elbow': (x + 0.3, y + 0.1, 1.2),
                    'left_hand': (x - 0.3, y + 0.3, 1.0), 'right_hand': (x + 0.3, y + 0.3, 1.0),
                    'pelvis': (x, y, 0.9)}, '', bins[person % len(bins)]))
        view.add_tracks(now, tracks, now)
        view.add_skeletons(now, figures, now)
        if index % 15 == 0:
            bin_id = bins[index % len(bins)]
            shelf_id = description.bins()[bin_id].shelf_id
            view.add_shelf_event(ShelfEventIn(f'{shelf_id}/{bin_id}/{now}', now, shelf_id,
                                              bin_id, 'pick', -150.0), now)
            if people:
                view.add_cart_event(CartEventIn(f'c{index}', now, 'v0', 'acct_0', 1, 'sku',
                                                1), now)
        start = time.perf_counter()
        markers = view.markers(now)
        middle = time.perf_counter()
        assert markers is not None
        msg = marker_array_msg(markers)
        converted = time.perf_counter()
        data = serialize_message(msg)
        done = time.perf_counter()
        core_ms.append(1e3 * (middle - start))
        convert_ms.append(1e3 * (converted - middle))
        serialize_ms.append(1e3 * (done - converted))
        sizes.append(len(data))
        counts.append(len(markers.markers))
    return {'core_ms': statistics.median(core_ms),
            'convert_ms': statistics.median(convert_ms),
            'serialize_ms': statistics.median(serialize_ms),
            'markers': statistics.median(counts), 'bytes': statistics.median(sizes)}


def main() -> None:
    """Print one line per crowd size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--people', default='1,10,20,40')
    parser.add_argument('--sets', type=int, default=100)
    args = parser.parse_args()
    print('people  core ms  convert ms  serialize ms  markers  bytes/array')
    for people in (int(p) for p in args.people.split(',')):
        r = run(people, args.sets)
        print(f'{people:6d}  {r["core_ms"]:7.2f}  {r["convert_ms"]:10.2f}  '
              f'{r["serialize_ms"]:12.2f}  {r["markers"]:7.0f}  {r["bytes"]:11.0f}')


if __name__ == '__main__':
    main()
