"""Benchmark the person locator: ms per 424x240 camera frame, on simulated frames.

Run ``PYTHONPATH=. python tools/bench_locator.py [--store config/store.yaml]
[--cameras 4] [--people 6] [--ticks 30] [--scale 1.0]``. Frames of the first ``--cameras``
cameras of the store (all: 0) are rendered first by the simulator, with people standing
and walking at random free spots; then every frame goes through what the node does per
depth message: decoding the 16UC1 bytes and ``PersonLocator.add_depth`` (background,
foreground, projection, and the fusion of each completed frame set, shared by its
cameras). The figures exclude rendering. The first 5 ticks learn the empty store.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import statistics
import time

import numpy as np

from go_store_nodes.core.locator import decode_depth, DepthFrame, LocatorConfig, PersonLocator
from go_store_nodes.core.sim.people import BodyState, pose_joints, PoseInput, sample_physique
from go_store_nodes.core.sim.render import Renderer
from go_store_nodes.core.store import load_store_description, StoreDescription

REPO = pathlib.Path(__file__).resolve().parents[1]
START_NS = 1_700_000_000 * 10**9
FRAME_NS = 66_666_667
EMPTY_TICKS = 5


def free_spot(store: StoreDescription, rng: np.random.Generator) -> tuple[float, float]:
    """Draw a floor point at least 0.4 m from every shelf."""
    width, depth = store.size_m
    while True:
        x, y = float(rng.uniform(0.5, width - 0.5)), float(rng.uniform(0.5, depth - 0.5))
        clear = True
        for shelf in store.shelves:
            local = shelf.t_map_shelf.inverse().apply([x, y, 0.0])
            sx, sy, _ = shelf.size_m
            if -sx / 2 - 0.4 < local[0] < sx / 2 + 0.4 and -0.4 < local[1] < sy + 0.4:
                clear = False
        if clear:
            return x, y


def main() -> None:
    """Render, then time the locator per camera frame; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--store', default=str(REPO / 'config' / 'store.yaml'))
    parser.add_argument('--cameras', type=int, default=4, help='first N cameras (0: all)')
    parser.add_argument('--people', type=int, default=6)
    parser.add_argument('--ticks', type=int, default=30)
    parser.add_argument('--scale', type=float, default=1.0, help='image scale (1: 424x240)')
    parser.add_argument('--seed', type=int, default=1)
    args = parser.parse_args()
    store = load_store_description(args.store)
    cameras = store.cameras[:args.cameras] if args.cameras > 0 else store.cameras
    renderer = Renderer(store, image_scale=args.scale, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    people = [(sample_physique(rng), *free_spot(store, rng), float(rng.uniform(0, 2 * math.pi)))
              for _ in range(args.people)]
    frames = []
    for tick in range(args.ticks):
        stamp = START_NS + tick * FRAME_NS
        bodies = []
        if tick >= EMPTY_TICKS:
            for pid, (physique, x, y, heading) in enumerate(people, start=1):
                step = 0.08 * (tick - EMPTY_TICKS) if pid % 2 else 0.0   # half of them walk
                pose = PoseInput(x + step * math.cos(heading), y + step * math.sin(heading),
                                 heading, gait_phase_rad=tick * 0.8,
                                 speed_mps=1.2 if pid % 2 else 0.0)
                bodies.append(BodyState(pid, pose_joints(physique, pose), physique.shirt_rgb,
                                        physique.trousers_rgb, physique.skin_rgb))
        for camera in cameras:
            depth, _ = renderer.render(camera.camera_id, bodies, stamp)
            frames.append((camera, stamp, depth.tobytes(), depth.shape))
    intrinsics = {c.camera_id: renderer.intrinsics(c.camera_id)[0] for c in cameras}
    locator = PersonLocator(LocatorConfig(), {c.camera_id: c.model.fps for c in cameras},
                            (0.0, 0.0), store.size_m)
    per_frame, detections, sets = [], 0, 0
    for camera, stamp, data, (height, width) in frames:
        start = time.perf_counter()
        depth = decode_depth('16UC1', height, width, width * 2, False, data)
        located = locator.add_depth(DepthFrame(camera.camera_id, stamp, depth,
                                               intrinsics[camera.camera_id],
                                               camera.t_map_depth, stamp))
        per_frame.append(time.perf_counter() - start)
        sets += len(located)
        if stamp >= START_NS + EMPTY_TICKS * FRAME_NS:
            detections += sum(len(s.detections) for s in located)
    measured = sorted(per_frame[EMPTY_TICKS * len(cameras):])
    ms = [1000.0 * t for t in measured]
    k = intrinsics[cameras[0].camera_id]
    print(f'{len(cameras)} cameras {k.width}x{k.height}, {args.people} people, '
          f'{len(measured)} frames timed, {sets} frame sets, '
          f'{detections / max(1, sets - EMPTY_TICKS):.1f} detections per set with people')
    print(f'ms per camera frame (decode + locate, fusion shared): mean '
          f'{statistics.fmean(ms):.2f}, median {statistics.median(ms):.2f}, '
          f'p95 {ms[int(0.95 * (len(ms) - 1))]:.2f}, max {ms[-1]:.2f}')
    print(f'load average during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores')


if __name__ == '__main__':
    main()
