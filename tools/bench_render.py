"""Benchmark the camera renderer: ms per camera frame for crowds of 0, 10 and 50 people.

Run ``python tools/bench_render.py [--store config/store.yaml]
[--scales 1.0 0.5 0.25] [--people 0 10 50] [--ticks 5] [--per-camera] [--profile]``. Every
tick renders all cameras (depth and colour) in one ``Renderer.render_frames`` batch, as
`go-store simulate` does (``--per-camera``: one ``Renderer.render`` call per camera);
people stand and reach at random places in the aisles.
"""

from __future__ import annotations

import argparse
import cProfile
import math
import pathlib
import pstats
import time
from typing import Any, Sequence

import numpy as np

from go_store_nodes.core.sim.people import (
    BodyState,
    HeldItem,
    pose_joints,
    PoseInput,
    sample_physique,
)
from go_store_nodes.core.sim.render import Renderer
from go_store_nodes.core.store import load_store_description, StoreDescription

DEFAULT_STORE = pathlib.Path(__file__).resolve().parents[1] / 'config' / 'store.yaml'
START_NS = 1_700_000_000 * 10**9
FRAME_NS = 66_666_667


def _free_spot(store: StoreDescription, rng: np.random.Generator) -> tuple[float, float]:
    """Draw a floor point in the store at least 0.3 m from every shelf."""
    width, depth = store.size_m
    while True:
        x, y = float(rng.uniform(0.4, width - 0.4)), float(rng.uniform(0.4, depth - 0.4))
        clear = True
        for shelf in store.shelves:
            local = shelf.t_map_shelf.inverse().apply([x, y, 0.0])
            sx, sy, _ = shelf.size_m
            if -sx / 2 - 0.3 < local[0] < sx / 2 + 0.3 and -0.3 < local[1] < sy + 0.3:
                clear = False
        if clear:
            return x, y


def crowd(store: StoreDescription, count: int, tick: int, seed: int = 0) -> list[BodyState]:
    """Build ``count`` people walking slowly, some reaching and holding an item."""
    rng = np.random.default_rng(seed)
    skus = sorted(store.catalog)
    bodies = []
    for person_id in range(1, count + 1):
        physique = sample_physique(rng)
        x, y = _free_spot(store, rng)
        heading = float(rng.uniform(-math.pi, math.pi))
        speed = 0.8
        x += math.cos(heading) * speed * tick * FRAME_NS * 1e-9
        y += math.sin(heading) * speed * tick * FRAME_NS * 1e-9
        reach = rng.random() < 0.3
        target = np.array([x + 0.5 * math.cos(heading), y + 0.5 * math.sin(heading), 1.1])
        joints = pose_joints(physique, PoseInput(
            x, y, heading, gait_phase_rad=tick * 0.5, speed_mps=speed,
            right_target=target if reach else None, right_amount=1.0 if reach else 0.0))
        held: tuple[HeldItem, ...] = ()
        if rng.random() < 0.5:
            held = (HeldItem(skus[int(rng.integers(len(skus)))],
                             np.asarray(joints['left_hand']) + [0.0, 0.0, 0.02], 'left'),)
        bodies.append(BodyState(person_id, joints, physique.shirt_rgb, physique.trousers_rgb,
                                physique.skin_rgb, held, heading))
    return bodies


def bench(store: StoreDescription, scale: float, people: Sequence[int], ticks: int,
          profile: bool = False, per_camera: bool = False) -> list[dict[str, Any]]:
    """Time full frame sets (every camera, both streams) at one scale."""
    renderer = Renderer(store, image_scale=scale, seed=0, depth_noise_subpixel=0.08)
    cameras = [c.camera_id for c in store.cameras]
    start = time.perf_counter()
    for camera_id in cameras:
        renderer.render(camera_id, [], START_NS)
    setup_s = time.perf_counter() - start
    rows = []
    profiler = cProfile.Profile() if profile else None
    for count in people:
        frames = [crowd(store, count, tick) for tick in range(ticks)]
        if profiler is not None:
            profiler.enable()
        per_tick, cpu_per_tick = [], []
        for tick, bodies in enumerate(frames):
            start = time.perf_counter()
            cpu_start = time.process_time()
            if per_camera:
                for camera_id in cameras:
                    renderer.render(camera_id, bodies, START_NS + tick * FRAME_NS)
            else:
                renderer.render_frames(cameras, bodies, START_NS + tick * FRAME_NS)
            per_tick.append(time.perf_counter() - start)
            cpu_per_tick.append(time.process_time() - cpu_start)
        if profiler is not None:
            profiler.disable()
        # The median tick: robust to other work on a shared machine; CPU time (this
        # process) is steadier than wall time when the machine is busy.
        elapsed = float(np.median(per_tick))
        cpu = float(np.median(cpu_per_tick))
        rows.append({'scale': scale, 'people': count, 'setup_s': setup_s,
                     'ms_per_camera_frame': 1000.0 * elapsed / len(cameras),
                     'cpu_ms_per_camera_frame': 1000.0 * cpu / len(cameras),
                     'ms_per_frame_set': 1000.0 * elapsed, 'cameras': len(cameras)})
    if profiler is not None:
        pstats.Stats(profiler).sort_stats('cumulative').print_stats(25)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--store', default=str(DEFAULT_STORE))
    parser.add_argument('--scales', type=float, nargs='+', default=[1.0, 0.5, 0.25])
    parser.add_argument('--people', type=int, nargs='+', default=[0, 10, 50])
    parser.add_argument('--ticks', type=int, default=7)
    parser.add_argument('--per-camera', action='store_true',
                        help='one render() call per camera instead of one batch per tick')
    parser.add_argument('--profile', action='store_true')
    args = parser.parse_args(argv)
    store = load_store_description(args.store)
    print(f'{"scale":>6} {"people":>6} {"ms/camera frame":>16} {"cpu ms/camera frame":>20} '
          f'{"ms/frame set":>13} {"cameras":>7} {"background s":>12}')
    for scale in args.scales:
        for row in bench(store, scale, args.people, args.ticks, args.profile,
                         args.per_camera):
            print(f'{row["scale"]:>6.2f} {row["people"]:>6d} '
                  f'{row["ms_per_camera_frame"]:>16.1f} '
                  f'{row["cpu_ms_per_camera_frame"]:>20.1f} {row["ms_per_frame_set"]:>13.1f} '
                  f'{row["cameras"]:>7d} {row["setup_s"]:>12.2f}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
