"""Benchmark the pose estimator: cost per person, and hand-in-bin accuracy on a bag.

Speed: ``PYTHONPATH=. python tools/bench_pose.py [--people 1,2,4,8] [--ticks 20]
[--scale 1.0]``. The simulator renders people standing at shelf fronts, one hand in a
bin (the reach posture the simulator uses), seen by every camera of the store; every
frame then goes through what the node does per depth message (decode the 16UC1 bytes,
``PoseEstimator.add_depth``: background, foreground, projection, frame sets) with the
true floor points as tracks. Reported: ms per camera frame, ms per frame set for the
stick figures alone (``_estimate``) and that divided by the people near shelves. The
first 5 ticks learn the empty store and are not timed.

Accuracy, without ROS: ``... bench_pose.py --bag IN/bag --replay OUT/bag --truth
IN/truth.json [--set name=value ...]`` runs the estimator over the depth frames of a
simulated bag with the tracks a replay recorded (``go-store replay``), then scores its
hands in bins with the evaluation's hand-in-bin metric; ``--set`` changes PoseConfig
settings. The bag's load-cell batches go in too, as the node subscribes to them
(``--no-weights``: sight alone). The truth stays in this tool; the estimator never sees
it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import statistics
import time

import numpy as np

from go_store_nodes.bagio.messages import time_ns
from go_store_nodes.bagio.predictions import load_predictions
from go_store_nodes.bagio.reader import messages
from go_store_nodes.bagio.topics import camera_topics, TRACKS_TOPIC, weights_topic
from go_store_nodes.core.evaluation import EvaluationConfig, parse_truth
from go_store_nodes.core.evaluation.data import PredictedSkeletonFrame
from go_store_nodes.core.evaluation.hands import hand_in_bin_metrics
from go_store_nodes.core.fusion.fusion import samples_from_flat
from go_store_nodes.core.locator import decode_depth, DepthFrame, LocatorConfig
from go_store_nodes.core.pose import PoseConfig, PoseEstimator, SkeletonSet, TrackState
from go_store_nodes.core.sim.people import (
    BodyState,
    pose_joints,
    PoseInput,
    reach_posture,
    sample_physique,
    to_body_frame,
)
from go_store_nodes.core.sim.render import Renderer
from go_store_nodes.core.store import Intrinsics, load_store_description, StoreDescription

REPO = pathlib.Path(__file__).resolve().parents[1]
START_NS = 1_700_000_000 * 10**9
FRAME_NS = 66_666_667
EMPTY_TICKS = 5


def reaching_people(store: StoreDescription, count: int, rng: np.random.Generator
                    ) -> list[tuple[BodyState, tuple[float, float]]]:
    """People at shelf fronts, each with one hand in a bin; (body, floor point of the head)."""
    bins = [(shelf, b) for shelf in store.shelves for b in shelf.bins]
    people: list[tuple[BodyState, tuple[float, float]]] = []
    taken: list[np.ndarray] = []
    while len(people) < count:
        shelf, bin_ = bins[int(rng.integers(len(bins)))]
        physique = sample_physique(rng)
        low, high = np.asarray(bin_.min_m), np.asarray(bin_.max_m)
        x = float(rng.uniform(low[0] + 0.1, high[0] - 0.1))
        target = shelf.t_map_shelf.apply([x, low[1] + 0.1, low[2] + 0.12])
        side = 'left' if rng.random() < 0.5 else 'right'
        sign = 1.0 if side == 'left' else -1.0
        stand = shelf.t_map_shelf.apply([x + sign * 0.15, -0.3, 0.0])[:2]
        if any(np.linalg.norm(stand - t) < 0.7 for t in taken):
            continue
        forward = shelf.t_map_shelf.rotation[:2, 1]
        heading = math.atan2(forward[1], forward[0])
        try:
            crouch, lean = reach_posture(physique, to_body_frame(
                target, float(stand[0]), float(stand[1]), heading), side)
        except ValueError:
            continue
        taken.append(stand)
        pose = PoseInput(float(stand[0]), float(stand[1]), heading, crouch_m=crouch,
                         lean_m=lean, **{f'{side}_target': target, f'{side}_amount': 1.0})
        joints = pose_joints(physique, pose)
        body = BodyState(len(people) + 1, joints, physique.shirt_rgb, physique.trousers_rgb,
                         physique.skin_rgb)
        head = joints['head']
        people.append((body, (float(head[0]), float(head[1]))))
    return people


def speed(args: argparse.Namespace) -> None:
    """Time the estimator on rendered people reaching into bins."""
    store = load_store_description(args.store)
    renderer = Renderer(store, image_scale=args.scale, seed=args.seed)
    intrinsics = {c.camera_id: renderer.intrinsics(c.camera_id)[0] for c in store.cameras}
    for count in (int(v) for v in args.people.split(',')):
        rng = np.random.default_rng(args.seed)
        people = reaching_people(store, count, rng)
        estimator = PoseEstimator(PoseConfig(), LocatorConfig(),
                                  {c.camera_id: c.model.fps for c in store.cameras},
                                  (0.0, 0.0), store.size_m, store.shelves)
        figure_s: list[float] = []
        original = estimator._estimate

        def timed(frame_set, original=original, figure_s=figure_s):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            result = original(frame_set)
            figure_s.append(time.perf_counter() - start)
            return result

        estimator._estimate = timed  # type: ignore[method-assign]
        per_frame: list[float] = []
        hands = skeletons = 0
        for tick in range(args.ticks):
            stamp = START_NS + tick * FRAME_NS
            bodies = [b for b, _ in people] if tick >= EMPTY_TICKS else []
            tracks = [TrackState(b.person_id, xy[0], xy[1]) for b, xy in people] \
                if tick >= EMPTY_TICKS else []
            for camera in store.cameras:
                depth, _ = renderer.render(camera.camera_id, bodies, stamp)
                data = depth.tobytes()
                start = time.perf_counter()
                image = decode_depth('16UC1', depth.shape[0], depth.shape[1],
                                     depth.shape[1] * 2, False, data)
                results = estimator.add_depth(DepthFrame(
                    camera.camera_id, stamp, image, intrinsics[camera.camera_id],
                    camera.t_map_depth, stamp))
                elapsed = time.perf_counter() - start
                if tick >= EMPTY_TICKS:
                    per_frame.append(elapsed)
                skeletons += sum(len(r.skeletons) for r in results)
                hands += sum(len(s.hands) for r in results for s in r.skeletons)
            results = estimator.add_tracks(tracks, stamp + 1)
            skeletons += sum(len(r.skeletons) for r in results)
            hands += sum(len(s.hands) for r in results for s in r.skeletons)
        ms = sorted(1000.0 * t for t in per_frame)
        figure_ms = sorted(1000.0 * t for t in figure_s[EMPTY_TICKS:])
        k = next(iter(intrinsics.values()))
        print(f'{count} people reaching, {len(store.cameras)} cameras {k.width}x{k.height}: '
              f'ms per camera frame mean {statistics.fmean(ms):.2f} (p95 '
              f'{ms[int(0.95 * (len(ms) - 1))]:.2f}); stick figures per frame set mean '
              f'{statistics.fmean(figure_ms):.2f} ms = '
              f'{statistics.fmean(figure_ms) / count:.2f} ms per person; '
              f'{skeletons} skeletons, {hands} hands in bins')
    print(f'load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores')


def _intrinsics(msg: object) -> Intrinsics:
    k = [float(v) for v in msg.k]  # type: ignore[attr-defined]
    return Intrinsics(int(msg.width), int(msg.height), k[0], k[4], k[2], k[5],  # type: ignore
                      str(msg.distortion_model), tuple(float(v) for v in msg.d))  # type: ignore


def accuracy(args: argparse.Namespace) -> None:
    """Run the estimator over a bag's depth with a replay's tracks; score hands in bins."""
    store = load_store_description(args.store)
    overrides = {}
    for item in args.set:
        name, value = item.split('=', 1)
        overrides[name] = float(value)
    config = dataclasses.replace(PoseConfig(), **overrides)
    estimator = PoseEstimator(config, LocatorConfig(),
                              {c.camera_id: c.model.fps for c in store.cameras},
                              (0.0, 0.0), store.size_m, store.shelves)
    predictions = load_predictions(args.replay)
    arrays = []
    for _, _, msg in messages(args.replay, [TRACKS_TOPIC]):
        arrays.append((time_ns(msg.header.stamp), [
            TrackState(int(t.track_id), float(t.position.x), float(t.position.y),
                       float(t.velocity.x), float(t.velocity.y)) for t in msg.tracks]))
    arrays.sort(key=lambda item: item[0])
    topics = {}
    if not args.no_weights:
        for shelf in store.shelves:
            topics[weights_topic(shelf.shelf_id)] = ('weights', None)
    for camera in store.cameras:
        names = camera_topics(camera.camera_id)
        topics[names.depth_image] = ('depth', camera)
        topics[names.depth_info] = ('info', camera)
    info: dict[str, Intrinsics] = {}
    results: list[SkeletonSet] = []
    next_array = 0
    spent = 0.0
    for topic, _, msg in messages(args.bag, list(topics)):
        kind, camera = topics[topic]
        if kind == 'weights':
            estimator.add_weights(samples_from_flat(
                msg.shelf_id, list(msg.bin_ids), time_ns(msg.header.stamp),
                int(msg.sample_period_ns), int(msg.sample_count), msg.grams))
            continue
        if kind == 'info':
            info[camera.camera_id] = _intrinsics(msg)
            continue
        if camera.camera_id not in info:
            continue
        stamp = time_ns(msg.header.stamp)
        while next_array < len(arrays) and arrays[next_array][0] <= stamp:
            results += estimator.add_tracks(arrays[next_array][1], arrays[next_array][0])
            next_array += 1
        start = time.perf_counter()
        depth = decode_depth(msg.encoding, int(msg.height), int(msg.width), int(msg.step),
                             bool(msg.is_bigendian), bytes(msg.data))
        try:
            results += estimator.add_depth(DepthFrame(camera.camera_id, stamp, depth,
                                                      info[camera.camera_id],
                                                      camera.t_map_depth, None))
        except ValueError:
            pass
        spent += time.perf_counter() - start
    results += estimator.flush(10**20)
    frames = tuple(PredictedSkeletonFrame(r.stamp_ns, tuple(
        (s.track_id, side, h.bin_id) for s in r.skeletons for side, h in s.hands.items()))
        for r in results)
    predictions = dataclasses.replace(predictions, skeleton_frames=frames,
                                      topic_counts={**predictions.topic_counts,
                                                    '/people/skeletons': len(frames)})
    with open(args.truth) as handle:
        truth = parse_truth(json.load(handle))
    metrics = hand_in_bin_metrics(truth, predictions, EvaluationConfig())
    for metric in metrics:
        print(f'{metric.name}: {metric.display()}')
    detail = dict(metrics[0].detail)
    print(json.dumps(detail))
    print(f'{len(results)} frame sets, {sum(len(r.skeletons) for r in results)} skeletons, '
          f'{1000.0 * spent / max(1, len(results)):.1f} ms per frame set (all cameras)')


def main() -> None:
    """Time the estimator, or score it on a bag."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--store', default=str(REPO / 'config' / 'store.yaml'))
    parser.add_argument('--people', default='1,2,4,8', help='speed: comma-separated counts')
    parser.add_argument('--ticks', type=int, default=20)
    parser.add_argument('--scale', type=float, default=1.0, help='image scale (1: 424x240)')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--bag', help='accuracy: simulated input bag')
    parser.add_argument('--replay', help='accuracy: output bag of a replay (tracks)')
    parser.add_argument('--truth', help='accuracy: truth.json of the input bag')
    parser.add_argument('--set', action='append', default=[], help='PoseConfig name=value')
    parser.add_argument('--no-weights', action='store_true',
                        help='accuracy: leave the load cells out (hands judged by sight alone)')
    args = parser.parse_args()
    if args.bag:
        accuracy(args)
    else:
        speed(args)


if __name__ == '__main__':
    main()
