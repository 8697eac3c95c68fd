"""Tracker evaluation and benchmark: go_store's tracker beside norfair on the same detections.

1. Accuracy: a simulated scenario (``Simulation.run()``) is turned into a detection
   stream the way a person locator would see it: the floor point under each head with
   noise, the stature from the head height, a colour signature from the clothes, random
   misses, hidden bursts of a few seconds, one merged detection for people closer than
   ``--merge-m``, and a few false detections. Both trackers track it; CLEAR MOT and IDF1
   (motmetrics, 0.5 m match distance) are computed against the simulated pelvis positions.
2. Cost: mean and 95th-percentile time per update for 1, 5, 10, 20 and 50 people walking
   at random (reported, never asserted).

The truth is used only here, to make detections and to score; the tracker never sees it.
norfair is the peer: ``norfair-enough`` (requirements.txt), the maintained fork of
tryolabs/norfair that runs on numpy 2 and is imported as ``norfair`` (the original
norfair 2.3.0 declares numpy<2). Without it the peer is reported as missing.
``go-store eval`` runs the same peer on a replay's recorded detections
(go_store_nodes/core/evaluation/peer.py).

Usage (from the repository root, PYTHONPATH=$PWD):
  python tools/bench_tracker.py --scenario config/scenarios/busy.yaml --duration 120
  python tools/bench_tracker.py --skip-accuracy --sizes 1,5,10,20,50
  python tools/bench_tracker.py --duration 60 --skip-timing --json out.json
"""

from __future__ import annotations

import argparse
import colorsys
import dataclasses
import json
import math
import pathlib
import sys
import time
from typing import Any, Callable, Optional

import numpy as np

from go_store_nodes.core.evaluation.data import PredictedTrackFrame, TruthFrame
from go_store_nodes.core.evaluation.tracking import tracking_metrics
from go_store_nodes.core.sim.scenario import load_scenario
from go_store_nodes.core.sim.world import Simulation
from go_store_nodes.core.store import load_store_description
from go_store_nodes.core.tracker import Detection, Tracker, TrackerConfig, zones_from_store

REPO = pathlib.Path(__file__).resolve().parents[1]
HUE_BINS = 8
SIGNATURE_LENGTH = HUE_BINS + 4  # 8 hue bins for colours, 4 brightness bins for greys
HEAD_TO_STATURE = 1.0 / 0.925    # the simulated head joint sits at 0.925 x stature


@dataclasses.dataclass
class Frame:
    """One detection array and the truth it was made from."""

    stamp_ns: int
    detections: list[Detection]
    truth: tuple[tuple[int, float, float], ...]  # (person id, pelvis x, pelvis y)


def colour_histogram(rgb: tuple[int, int, int]) -> np.ndarray:
    """Return a soft hue/brightness histogram of one colour (what a locator might measure)."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    out = np.zeros(SIGNATURE_LENGTH)
    if s > 0.2:
        position = h * HUE_BINS
        low = int(math.floor(position)) % HUE_BINS
        frac = position - math.floor(position)
        out[low] += s * (1.0 - frac)
        out[(low + 1) % HUE_BINS] += s * frac
    grey = min(3, int(v * 4))
    out[HUE_BINS + grey] += 1.0 - min(s, 0.8)
    return out


def signature(shirt: tuple[int, int, int], trousers: tuple[int, int, int],
              rng: np.random.Generator, noise: float) -> tuple[float, ...]:
    """Return a noisy unit-norm signature of head-and-shoulders (mostly shirt) colours."""
    vector = 0.75 * colour_histogram(shirt) + 0.25 * colour_histogram(trousers)
    vector = np.abs(vector + rng.normal(0.0, noise, SIGNATURE_LENGTH))
    return tuple(float(v) for v in vector / np.linalg.norm(vector))


def sim_stream(scenario_path: str, duration_s: float, seed: int, noise_m: float = 0.05,
               miss_rate: float = 0.05, hide_rate_per_s: float = 0.03,
               hide_s: tuple[float, float] = (1.0, 4.0), merge_m: float = 0.35,
               false_rate_per_s: float = 0.3) -> tuple[list[Frame], Any]:
    """Return the detection stream of a simulated scenario (and its store)."""
    scenario = load_scenario(scenario_path)
    scenario = dataclasses.replace(scenario, duration_s=min(duration_s, scenario.duration_s))
    store = load_store_description(scenario.store_path)
    rng = np.random.default_rng(seed)
    fps = scenario.render.camera_fps
    hidden_until: dict[int, float] = {}
    width, depth = store.size_m
    frames = []
    for tick in Simulation(scenario, store).run():
        if not tick.camera_frame:
            continue
        t_s = (tick.stamp_ns - scenario.start_ns) / 1e9
        people = []
        for body in tick.bodies:
            pid = body.person_id
            if pid not in hidden_until and rng.random() < hide_rate_per_s / fps:
                hidden_until[pid] = t_s + rng.uniform(*hide_s)
            if hidden_until.get(pid, -1.0) > t_s:
                continue
            hidden_until.pop(pid, None)
            if rng.random() < miss_rate:
                continue
            head = body.joints['head']
            people.append((np.array(head[:2], dtype=float), float(head[2]) * HEAD_TO_STATURE,
                           body))
        detections: list[Detection] = []
        merged: set[int] = set()
        for i, (xy, height, body) in enumerate(people):
            if i in merged:
                continue
            for j in range(i + 1, len(people)):
                if j not in merged and np.linalg.norm(people[j][0] - xy) < merge_m:
                    merged.add(j)  # one blob: the locator reports the taller head
                    if people[j][1] > height:
                        xy, height, body = people[j]
            noisy = xy + rng.normal(0.0, noise_m, 2)
            detections.append(Detection(
                (float(noisy[0]), float(noisy[1])), height + float(rng.normal(0.0, 0.02)),
                0.9, signature(body.shirt_rgb, body.trousers_rgb, rng, 0.03)))
        if rng.random() < false_rate_per_s / fps:
            detections.append(Detection(
                (float(rng.uniform(1.0, width - 1.0)), float(rng.uniform(1.0, depth - 1.0))),
                float(rng.uniform(1.0, 1.9)), 0.5,
                tuple(float(v) for v in np.eye(SIGNATURE_LENGTH)[rng.integers(0, 12)])))
        truth = tuple((b.person_id, float(b.position_xy()[0]), float(b.position_xy()[1]))
                      for b in tick.bodies)
        frames.append(Frame(tick.stamp_ns, detections, truth))
    return frames, store


# -- trackers under test ------------------------------------------------------------------

Runner = Callable[[list[Detection], int], list[tuple[int, float, float]]]


def ours(zones: tuple = (), **config: Any) -> tuple[Runner, Tracker]:
    """Return an update function of go_store's tracker (and the tracker)."""
    tracker = Tracker(TrackerConfig(first_track_id=1, **config), zones)

    def update(detections: list[Detection], stamp_ns: int) -> list[tuple[int, float, float]]:
        return [(t.track_id, float(t.position[0]), float(t.position[1]))
                for t in tracker.update(detections, stamp_ns)]
    return update, tracker


def norfair_module() -> Optional[Any]:
    """Import norfair if it is installed (it is optional)."""
    try:
        import norfair
    except ImportError:
        return None
    return norfair


NORFAIR_SETTINGS = dict(distance_function='euclidean', distance_threshold=0.8,
                        hit_counter_max=45, initialization_delay=2)


def peer() -> Optional[Runner]:
    """Return an update function of norfair's tracker on floor points, or None."""
    norfair = norfair_module()
    if norfair is None:
        return None
    tracker = norfair.Tracker(**NORFAIR_SETTINGS)

    def update(detections: list[Detection], stamp_ns: int) -> list[tuple[int, float, float]]:
        objects = tracker.update([norfair.Detection(np.array([d.position[:2]]))
                                  for d in detections])
        return [(int(o.id), float(o.estimate[0][0]), float(o.estimate[0][1]))
                for o in objects if o.id is not None]
    return update


def run(update: Runner, frames: list[Frame]) -> tuple[list[PredictedTrackFrame], list[float]]:
    """Feed every frame; return the predicted frames and the seconds per update."""
    predicted, seconds = [], []
    for frame in frames:
        started = time.perf_counter()
        tracks = update(frame.detections, frame.stamp_ns)
        seconds.append(time.perf_counter() - started)
        predicted.append(PredictedTrackFrame(frame.stamp_ns, tuple(tracks)))
    return predicted, seconds


def accuracy(args: argparse.Namespace) -> dict[str, Any]:
    """Score both trackers on the simulated stream."""
    started = time.perf_counter()
    frames, store = sim_stream(args.scenario, args.duration, args.seed)
    stream_s = time.perf_counter() - started
    truth = [TruthFrame(f.stamp_ns, f.truth) for f in frames]
    people = len({p[0] for f in frames for p in f.truth})
    result: dict[str, Any] = {
        'scenario': str(args.scenario), 'duration_s': args.duration, 'seed': args.seed,
        'frames': len(frames), 'people': people,
        'detections': sum(len(f.detections) for f in frames),
        'stream_seconds': round(stream_s, 2)}
    update, tracker = ours(zones_from_store(store))
    runners: dict[str, Optional[Runner]] = {'go_store': update, 'norfair': peer()}
    for name, runner in runners.items():
        if runner is None:
            result[name] = 'not installed'
            continue
        predicted, seconds = run(runner, frames)
        metrics = tracking_metrics(truth, predicted, distance_m=0.5)
        assert metrics is not None, 'motmetrics is not installed'
        result[name] = {
            'mota': round(metrics.mota, 4), 'idf1': round(metrics.idf1, 4),
            'motp_m': round(metrics.motp_m, 4), 'id_switches': metrics.id_switches,
            'false_positives': metrics.false_positives, 'misses': metrics.misses,
            'ground_truth_objects': metrics.ground_truth_objects,
            'tracks_made': len({t[0] for p in predicted for t in p.tracks}),
            'mean_update_ms': round(1000.0 * float(np.mean(seconds)), 4)}
    result['go_store_counters'] = dict(sorted(tracker.counters.items()))
    return result


def walkers(count: int, frames: int, fps: float, seed: int) -> list[Frame]:
    """Return ``count`` people walking at random in an area that grows with them."""
    rng = np.random.default_rng(seed)
    side = 3.0 * math.sqrt(count) + 2.0   # about 9 m^2 per person
    position = rng.uniform(0.0, side, (count, 2))
    heading = rng.uniform(0.0, 2.0 * math.pi, count)
    looks = rng.dirichlet(np.ones(SIGNATURE_LENGTH), count)
    looks /= np.linalg.norm(looks, axis=1, keepdims=True)
    heights = rng.uniform(1.5, 1.95, count)
    result = []
    for k in range(frames):
        heading += rng.normal(0.0, 0.15, count)
        position += 1.0 / fps * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        outside = (position < 0.0) | (position > side)
        heading[outside.any(axis=1)] += math.pi
        position = np.clip(position, 0.0, side)
        noisy = position + rng.normal(0.0, 0.05, position.shape)
        detections = [Detection((float(x), float(y)), float(h), 0.9, tuple(look))
                      for (x, y), h, look in zip(noisy, heights, looks, strict=True)]
        truth = tuple((i, float(x), float(y)) for i, (x, y) in enumerate(position))
        result.append(Frame(int(k * 1e9 / fps), detections, truth))
    return result


def timing(sizes: list[int], frames: int, seed: int) -> list[dict[str, Any]]:
    """Return the cost per update of both trackers for each number of people."""
    rows = []
    for count in sizes:
        stream = walkers(count, frames, 15.0, seed)
        row: dict[str, Any] = {'people': count, 'frames': frames}
        runners: dict[str, Optional[Runner]] = {
            'go_store': ours(birth_anywhere_after_s=0.2)[0], 'norfair': peer()}
        for name, runner in runners.items():
            if runner is None:
                row[name] = 'not installed'
                continue
            _, seconds = run(runner, stream)
            steady = np.array(seconds[frames // 5:]) * 1000.0  # after every birth
            row[name] = {'mean_ms': round(float(steady.mean()), 4),
                         'p95_ms': round(float(np.percentile(steady, 95)), 4)}
        rows.append(row)
    return rows


def main(argv: Optional[list[str]] = None) -> int:
    """Run the evaluation and the benchmark; print (and optionally save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--scenario', default=str(REPO / 'config' / 'scenarios' / 'busy.yaml'))
    parser.add_argument('--duration', type=float, default=120.0, help='simulated seconds')
    parser.add_argument('--seed', type=int, default=7, help='seed of the detection noise')
    parser.add_argument('--sizes', default='1,5,10,20,50', help='people counts to time')
    parser.add_argument('--timing-frames', type=int, default=300)
    parser.add_argument('--skip-accuracy', action='store_true')
    parser.add_argument('--skip-timing', action='store_true')
    parser.add_argument('--json', help='also write the figures to this file')
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    if not args.skip_accuracy:
        report['accuracy'] = accuracy(args)
    if not args.skip_timing:
        report['timing'] = timing([int(s) for s in args.sizes.split(',')],
                                  args.timing_frames, args.seed)
    report['norfair'] = NORFAIR_SETTINGS if norfair_module() else 'not installed'
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        pathlib.Path(args.json).write_text(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
