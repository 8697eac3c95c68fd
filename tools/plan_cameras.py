#!/usr/bin/env python3
"""Propose a ceiling-camera layout for a store: greedy set multi-cover, then pruning.

Candidates are poses on a grid of ceiling positions (``--step`` m) at ``--mount-height``
m, each looking straight down (image long side along x or along y) or tilted by
``--tilts`` degrees towards one of the four walls about either image axis. Every
candidate's depth view of the free floor at ``--height`` and colour view of every bin
front are computed once with ``go_store_nodes.core.coverage`` (shelves occluding).

1. Greedy: add the candidate that most raises the capped counts (min(count, 2)) where a
   target is not met yet (or start from ``--start`` and move one camera to repair it).
2. Prune: drop each chosen camera again if the targets still hold without it.
3. Replace any two chosen cameras by one candidate, and drop one camera while moving
   another anywhere, as long as the targets hold; repeat until neither helps.

Targets: floor seen by >= 1 depth camera >= --floor-1 and by >= 2 >= --floor-2 (a little
above the store's 99 % / 80 %, since the plan samples a 10 cm floor grid and the check a
5 cm one), every bin-front sample by >= 2 colour cameras. Prints the layout as the
``cameras:`` YAML of the store description (rpy_deg rotations); progress on stderr.
Check the result with ``go-store coverage``. The reference store's layout came from

    PYTHONPATH=$PWD python tools/plan_cameras.py --store config/store.yaml

(about 1 minute of CPU, 2 minutes on a shared machine, 0.6 GB of memory).
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import yaml

from go_store_nodes.core.coverage import (
    bin_face_points,
    blocked_by_shelves,
    CoverageConfig,
    free_floor,
    visible,
)
from go_store_nodes.core.store import Camera, load_store_description
from go_store_nodes.core.transforms import rotation_from_rpy, Transform


def candidate_rpys(tilts_deg: list[float]) -> list[tuple[float, float, float]]:
    """Orientations (roll, pitch, yaw in degrees) of the candidate cameras.

    roll 180 looks straight down; roll 180 -+ t tilts along the image's short side, pitch
    +- t along its long side; yaw turns the whole camera about the vertical.
    """
    rpys = [(180.0, 0.0, 0.0), (180.0, 0.0, 90.0)]
    for tilt in tilts_deg:
        for yaw in (0.0, 90.0, 180.0, 270.0):
            rpys.append((180.0 - tilt, 0.0, yaw))
            rpys.append((180.0, tilt, yaw))
    return rpys


def replace_pairs(chosen: list[int], floor_matrix: np.ndarray, face_matrix: np.ndarray,
                  met, args: argparse.Namespace) -> list[int]:
    """Replace any two chosen cameras by one candidate while the targets still hold."""
    improved = True
    while improved and len(chosen) > 2:
        improved = False
        for i in range(len(chosen)):
            for j in range(i + 1, len(chosen)):
                rest = [c for k, c in enumerate(chosen) if k not in (i, j)]
                ok = _all_met(floor_matrix[rest].sum(axis=0), face_matrix[rest].sum(axis=0),
                              floor_matrix, face_matrix, args)
                if len(ok):
                    best = int(ok[0])
                    print(f'# replaced two cameras by candidate {best}', file=sys.stderr)
                    chosen = rest + [best]
                    improved = True
                    break
            if improved:
                break
    assert met(chosen)
    return chosen


def _all_met(base_floor: np.ndarray, base_face: np.ndarray, floor_matrix: np.ndarray,
             face_matrix: np.ndarray, args: argparse.Namespace) -> np.ndarray:
    """Return the candidates that, added to the base counts, meet every target."""
    floor = np.minimum(base_floor, 2).astype(np.uint8)[None, :] + floor_matrix
    one = (floor >= 1).mean(axis=1)
    two = (floor >= 2).mean(axis=1)
    both = ((np.minimum(base_face, 2).astype(np.uint8)[None, :] + face_matrix) >= 2).mean(
        axis=1)
    ok = (one >= args.floor_1) & (two >= args.floor_2) & (both >= args.bin_2 - 1e-9)
    order = np.argsort(-(two + one))
    return order[ok[order]]


def drop_one_repair_one(chosen: list[int], floor_matrix: np.ndarray, face_matrix: np.ndarray,
                        args: argparse.Namespace) -> list[int]:
    """Drop a camera and move one other to any candidate pose while the targets hold."""
    improved = True
    while improved and len(chosen) > 2:
        improved = False
        for dropped in chosen:
            rest = [c for c in chosen if c != dropped]
            for moved in rest:
                base = [c for c in rest if c != moved]
                ok = _all_met(floor_matrix[base].sum(axis=0), face_matrix[base].sum(axis=0),
                              floor_matrix, face_matrix, args)
                if len(ok):
                    chosen = base + [int(ok[0])]
                    print(f'# dropped {dropped}, moved {moved} to {int(ok[0])}: '
                          f'{len(chosen)} cameras', file=sys.stderr)
                    improved = True
                    break
            if improved:
                break
    return chosen


def repair_by_moving_one(chosen: list[int], floor_matrix: np.ndarray,
                         face_matrix: np.ndarray, met, args: argparse.Namespace) -> list[int]:
    """Move one camera of a layout that misses a target to a pose that meets them all."""
    if met(chosen):
        return chosen
    for moved in chosen:
        base = [c for c in chosen if c != moved]
        ok = _all_met(floor_matrix[base].sum(axis=0), face_matrix[base].sum(axis=0),
                      floor_matrix, face_matrix, args)
        if len(ok):
            print(f'# repaired by moving {moved} to {int(ok[0])}', file=sys.stderr)
            return base + [int(ok[0])]
    print('# no single move repairs the start layout', file=sys.stderr)
    return chosen


def main() -> int:
    """Plan and print a layout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--store', default='config/store.yaml')
    parser.add_argument('--model', default=None, help='camera model (default: the first)')
    parser.add_argument('--mount-height', type=float, nargs='+', default=[3.5, 4.0])
    parser.add_argument('--step', type=float, default=0.5, help='candidate grid pitch (m)')
    parser.add_argument('--tilts', type=float, nargs='*', default=[10.0, 20.0, 30.0])
    parser.add_argument('--height', type=float, default=1.8)
    parser.add_argument('--cell', type=float, default=0.1)
    parser.add_argument('--face-step', type=float, default=0.05)
    parser.add_argument('--floor-1', type=float, default=0.995)
    parser.add_argument('--floor-2', type=float, default=0.85)
    parser.add_argument('--start', help='YAML with a cameras: list on the candidate grid to '
                        'start from (e.g. an earlier proposal); moved one at a time to repair')
    parser.add_argument('--bin-2', type=float, default=1.0,
                        help='share of all bin-front samples to see by >= 2 cameras')
    args = parser.parse_args()

    store = load_store_description(args.store)
    model = store.camera_models[args.model or next(iter(store.camera_models))]
    config = CoverageConfig(cell_m=args.cell, heights_m=(args.height,),
                            face_step_m=args.face_step)
    grid, free = free_floor(store, config.cell_m)
    floor_points = np.column_stack([grid.reshape(-1, 2)[free.ravel()],
                                    np.full(int(free.sum()), args.height)])
    face_points = np.vstack([bin_face_points(s, b.min_m, b.max_m, config)
                             for s in store.shelves for b in s.bins])
    width, depth = store.size_m
    xs = np.arange(args.step / 2, width, args.step)
    ys = np.arange(args.step / 2, depth, args.step)
    candidates = []
    floor_sees = []
    face_sees = []
    for z in args.mount_height:
        for x in xs:
            for y in ys:
                for rpy in candidate_rpys(args.tilts):
                    rotation = rotation_from_rpy(*(math.radians(a) for a in rpy))
                    camera = Camera('candidate', model, '',
                                    Transform(rotation, np.array([x, y, z])))
                    depth_seen = visible(camera.t_map_depth, model.depth, floor_points,
                                         model.depth_range_m)
                    index = np.flatnonzero(depth_seen)
                    depth_seen[index] = ~blocked_by_shelves(
                        camera.t_map_depth.translation, floor_points[index], store.shelves)
                    colour_seen = visible(camera.t_map_color, model.color, face_points)
                    index = np.flatnonzero(colour_seen)
                    colour_seen[index] = ~blocked_by_shelves(
                        camera.t_map_color.translation, face_points[index], store.shelves)
                    candidates.append((float(x), float(y), float(z), rpy))
                    floor_sees.append(depth_seen)
                    face_sees.append(colour_seen)
    # uint8: a cell's count stays far below 255, and the candidate sweeps stay small.
    floor_matrix = np.array(floor_sees, dtype=np.uint8)
    face_matrix = np.array(face_sees, dtype=np.uint8)
    print(f'# {len(candidates)} candidates, {floor_points.shape[0]} floor cells, '
          f'{face_points.shape[0]} bin-front samples', file=sys.stderr)

    def figures(chosen: list[int]) -> tuple[float, float, float]:
        floor = floor_matrix[chosen].sum(axis=0) if chosen else np.zeros(len(floor_points))
        face = face_matrix[chosen].sum(axis=0) if chosen else np.zeros(len(face_points))
        return (float(np.mean(floor >= 1)), float(np.mean(floor >= 2)),
                float(np.mean(face >= 2)))

    def met(chosen: list[int]) -> bool:
        one, two, face = figures(chosen)
        return one >= args.floor_1 and two >= args.floor_2 and face >= args.bin_2 - 1e-9

    chosen: list[int] = []
    if args.start:
        index_of = {c: i for i, c in enumerate(candidates)}
        for entry in yaml.safe_load(open(args.start))['cameras']:
            pose = entry['pose']
            key = (*(float(v) for v in pose['translation_m']),
                   tuple(float(v) for v in pose['rotation']['rpy_deg']))
            chosen.append(index_of[key])
        chosen = repair_by_moving_one(chosen, floor_matrix, face_matrix, met, args)
    floor_count = floor_matrix[chosen].sum(axis=0).astype(np.uint8)
    face_count = face_matrix[chosen].sum(axis=0).astype(np.uint8)
    while not met(chosen):
        one, two, face = figures(chosen)
        gain = np.zeros(len(candidates))
        # Marginal gain of capped counts, only where a target is still unmet; bin fronts
        # weigh more per sample since there are fewer samples and every one must be seen.
        if one < args.floor_1:
            gain += floor_matrix[:, floor_count == 0].sum(axis=1)
        if two < args.floor_2:
            gain += 0.7 * floor_matrix[:, floor_count == 1].sum(axis=1)
        if face < args.bin_2:
            gain += 3.0 * face_matrix[:, face_count < 2].sum(axis=1)
        gain[chosen] = -1.0
        best = int(np.argmax(gain))
        if gain[best] <= 0.0:
            print('# no candidate improves the unmet targets', file=sys.stderr)
            break
        chosen.append(best)
        floor_count += floor_matrix[best]
        face_count += face_matrix[best]
        print(f'# +{candidates[best]} -> {figures(chosen)}', file=sys.stderr)
    for index in list(reversed(chosen)):
        rest = [c for c in chosen if c != index]
        if met(rest):
            chosen = rest
            print(f'# dropped {candidates[index]}', file=sys.stderr)
    chosen = replace_pairs(chosen, floor_matrix, face_matrix, met, args)
    chosen = drop_one_repair_one(chosen, floor_matrix, face_matrix, args)
    assert met(chosen)
    one, two, face = figures(chosen)
    print(f'# {len(chosen)} cameras: floor at {args.height} m >=1 {one:.1%}, >=2 {two:.1%}; '
          f'bin-front samples >=2 {face:.1%}', file=sys.stderr)
    ordered = sorted(chosen, key=lambda c: (candidates[c][1], candidates[c][0]))
    print('cameras:')
    for number, index in enumerate(ordered, start=1):
        x, y, z, rpy = candidates[index]
        print(f"- id: cam_{number:02d}\n  model: {model.name}\n  serial: ''\n  pose:\n"
              f'    translation_m: [{x:g}, {y:g}, {z:g}]\n    rotation:\n'
              f'      rpy_deg: [{rpy[0]:g}, {rpy[1]:g}, {rpy[2]:g}]')
    return 0 if met(chosen) else 1


if __name__ == '__main__':
    sys.exit(main())
