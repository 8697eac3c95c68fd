"""Benchmark the person locator: ms per 424x240 camera frame, and accuracy on a scenario.

Speed: ``PYTHONPATH=. python tools/bench_locator.py [--store config/store.yaml]
[--cameras 4] [--people 6] [--ticks 30] [--scale 1.0]``. Frames of the first ``--cameras``
cameras of the store (all: 0) are rendered first by the simulator, with people standing
and walking at random free spots; then every frame goes through what the node does per
depth message: decoding the 16UC1 bytes and ``PersonLocator.add_depth`` (background,
foreground, projection, and the fusion of each completed frame set, shared by its
cameras). The figures exclude rendering. The first 5 ticks learn the empty store.

Accuracy: ``... bench_locator.py --scenario smoke --duration 20 [--camera-fps 5]
[--scale 1.0]`` runs the simulator's world for the scenario and locates people in every
camera frame; per frame set, each person whose head (and the space just above it) is in
some camera's view should have a detection within 0.15 m of the head (recall), and every
detection should lie within 0.3 m of someone's head or pelvis (false detections
otherwise). The truth stays in this tool; the locator never sees it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import pathlib
import statistics
import time

import numpy as np

from go_store_nodes.core.locator import (
    ColorFrame,
    decode_depth,
    DepthFrame,
    LocatorConfig,
    PersonLocator,
)
from go_store_nodes.core.locator.camera import in_view
from go_store_nodes.core.sim.people import BodyState, pose_joints, PoseInput, sample_physique
from go_store_nodes.core.sim.render import Renderer
from go_store_nodes.core.sim.scenario import load_scenario
from go_store_nodes.core.sim.world import Simulation
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


def accuracy(args: argparse.Namespace) -> None:
    """Locate the people of a simulated scenario; print recall and false detections."""
    path = pathlib.Path(args.scenario)
    if not path.suffix:
        path = REPO / 'config' / 'scenarios' / f'{args.scenario}.yaml'
    scenario = load_scenario(path)
    scenario = dataclasses.replace(
        scenario, duration_s=args.duration,
        render=dataclasses.replace(scenario.render, image_scale=args.scale,
                                   camera_fps=args.camera_fps))
    store = load_store_description(scenario.store_path)
    renderer = Renderer(store, image_scale=args.scale, seed=scenario.seed,
                        depth_noise_subpixel=scenario.sensors.depth_noise_subpixel)
    locator = PersonLocator(LocatorConfig(), {c.camera_id: c.model.fps for c in store.cameras},
                            (0.0, 0.0), store.size_m)
    intrinsics = {c.camera_id: renderer.intrinsics(c.camera_id) for c in store.cameras}
    bodies_at: dict[int, tuple[BodyState, ...]] = {}
    expected = found = false = sets = duplicates = 0
    set_sizes: dict[int, int] = {}
    errors: list[float] = []
    for tick in Simulation(scenario, store).run():
        if not tick.camera_frame:
            continue
        bodies_at[tick.stamp_ns] = tick.bodies
        for camera in store.cameras:
            if camera.camera_id in tick.dropped_cameras:
                continue
            depth, colour = renderer.render(camera.camera_id, tick.bodies, tick.stamp_ns)
            depth_k, colour_k = intrinsics[camera.camera_id]
            locator.add_color(ColorFrame(camera.camera_id, tick.stamp_ns, colour, colour_k,
                                         camera.t_map_color))
            for located in locator.add_depth(DepthFrame(
                    camera.camera_id, tick.stamp_ns,
                    depth.astype(np.float32) * np.float32(0.001), depth_k,
                    camera.t_map_depth, tick.stamp_ns)):
                bodies = bodies_at.get(located.stamp_ns, ())
                sets += 1
                for body in bodies:
                    head = np.asarray(body.joints['head'], dtype=float)
                    disc = np.array([head + [dx, dy, 0.2] for dx, dy in
                                     ((0, 0), (0.15, 0), (-0.15, 0), (0, 0.15), (0, -0.15))])
                    if not any(np.all(in_view(disc, intrinsics[c.camera_id][0],
                                              c.t_map_depth)) for c in store.cameras):
                        continue
                    expected += 1
                    nearest = min((math.hypot(d.x_m - head[0], d.y_m - head[1])
                                   for d in located.detections), default=math.inf)
                    if nearest <= 0.15:
                        found += 1
                        errors.append(nearest)
                set_sizes[len(located.camera_ids)] = set_sizes.get(len(located.camera_ids), 0) + 1
                claimed: dict[int, int] = {}
                for d in located.detections:
                    if not any(math.hypot(d.x_m - j[0], d.y_m - j[1]) <= 0.3
                               for b in bodies for j in (b.joints['head'], b.joints['pelvis'])):
                        false += 1
                    if bodies:
                        nearest_body = min(range(len(bodies)), key=lambda i: math.hypot(
                            d.x_m - bodies[i].joints['head'][0],
                            d.y_m - bodies[i].joints['head'][1]))
                        head = bodies[nearest_body].joints['head']
                        if math.hypot(d.x_m - head[0], d.y_m - head[1]) <= 0.6:
                            claimed[nearest_body] = claimed.get(nearest_body, 0) + 1
                duplicates += sum(n - 1 for n in claimed.values())
    print(f'{scenario.name}: {args.duration} s at {args.camera_fps} fps, scale {args.scale}, '
          f'{len(store.cameras)} cameras, {sets} frame sets')
    print(f'people in view: {expected}, found within 0.15 m of the head: {found} '
          f'({100.0 * found / max(1, expected):.1f} %), mean error '
          f'{1000.0 * (statistics.fmean(errors) if errors else math.nan):.0f} mm; '
          f'false detections: {false}; second detections of one person (within 0.6 m of '
          f'their head): {duplicates}; frame sets by camera count: '
          f'{dict(sorted(set_sizes.items()))}')


def main() -> None:
    """Render, then time the locator per camera frame; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--store', default=str(REPO / 'config' / 'store.yaml'))
    parser.add_argument('--cameras', type=int, default=4, help='first N cameras (0: all)')
    parser.add_argument('--people', type=int, default=6)
    parser.add_argument('--ticks', type=int, default=30)
    parser.add_argument('--scale', type=float, default=1.0, help='image scale (1: 424x240)')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--scenario', help='accuracy on this scenario (tier name or YAML)')
    parser.add_argument('--duration', type=float, default=20.0, help='accuracy: seconds')
    parser.add_argument('--camera-fps', type=float, default=5.0, help='accuracy: frame rate')
    args = parser.parse_args()
    if args.scenario:
        accuracy(args)
        return
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
