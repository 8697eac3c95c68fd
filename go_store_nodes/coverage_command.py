"""`go-store coverage`: how much of the floor and of the bin fronts the cameras see.

Prints the figures of ``core.coverage`` for a store description, optionally writes the
floor heat map as a PNG, and exits 1 when a figure is below a threshold given on the
command line (so a layout can be checked in CI). Exit 2: the thresholds are invalid.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from .core.coverage import (
    check_thresholds,
    compute_coverage,
    CoverageConfig,
    CoverageThresholds,
    format_report,
    heat_map,
)
from .core.store import load_store_description

DEFAULT_HEIGHTS_M = (1.5, 1.8)


def add_subcommand(sub: argparse._SubParsersAction, store_path) -> None:
    """Add `coverage` to the `go-store` parser; ``store_path(args)`` resolves --store."""
    parser = sub.add_parser(
        'coverage', help='floor and bin-front coverage of the cameras; heat-map PNG',
        description='Share of free floor seen by >= 1 and >= 2 depth cameras (at 1.5 m, '
        '1.8 m and --height above the floor) and share of each bin front seen by >= 1 and '
        '>= 2 colour cameras, shelves occluding; share of each gate zone seen by a near depth '
        'camera. Exit 1 when a --min-* threshold is missed.')
    parser.add_argument('--store', default=None,
                        help='store description YAML (default: the package config/store.yaml)')
    parser.add_argument('--png', help='write the heat map (cameras per floor cell at '
                        '--height, shelves, bin fronts, camera positions) to this PNG')
    parser.add_argument('--height', type=float, default=1.8,
                        help='height above the floor (m) of the --min-floor-* checks and the '
                        'heat map (default 1.8: heads)')
    parser.add_argument('--min-floor-1', type=float, default=None, metavar='SHARE',
                        help='least share (0..1) of free floor seen by >= 1 depth camera')
    parser.add_argument('--min-floor-2', type=float, default=None, metavar='SHARE',
                        help='least share (0..1) of free floor seen by >= 2 depth cameras')
    parser.add_argument('--min-bin-1', type=float, default=None, metavar='SHARE',
                        help='least share (0..1) of every bin front seen by >= 1 colour camera')
    parser.add_argument('--min-bin-2', type=float, default=None, metavar='SHARE',
                        help='least share (0..1) of every bin front seen by >= 2 colour '
                        'cameras')
    parser.add_argument('--min-gate-near', type=float, default=None, metavar='SHARE',
                        help='least share (0..1) of every gate zone seen at head height by a '
                        'depth camera within --gate-near metres')
    parser.add_argument('--gate-near', type=float, default=CoverageConfig.gate_near_m,
                        metavar='M', help='range (m) within which a depth camera sees a gate '
                        'zone well enough to find people at the door (default %(default)s; '
                        'a D435 at 424x240 has about 15 cm RMS depth error there)')
    parser.add_argument('--cell', type=float, default=CoverageConfig.cell_m, metavar='M',
                        help='floor grid pitch in m (default %(default)s)')
    parser.set_defaults(func=lambda args: run(args, store_path(args)))


def run(args: argparse.Namespace, store_file: str) -> int:
    """Run the command; return the exit status."""
    try:
        thresholds = CoverageThresholds(args.height, args.min_floor_1, args.min_floor_2,
                                        args.min_bin_1, args.min_bin_2, args.min_gate_near)
        heights = tuple(sorted(set(DEFAULT_HEIGHTS_M) | {args.height}))
        config = CoverageConfig(cell_m=args.cell, heights_m=heights, gate_near_m=args.gate_near)
    except ValueError as error:
        print(f'go-store coverage: {error}', file=sys.stderr)
        return 2
    store = load_store_description(store_file)
    report = compute_coverage(store, config)
    print(format_report(report))
    if args.png:
        import cv2
        out = pathlib.Path(args.png)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), heat_map(store, report.floor(args.height), report.bins)):
            print(f'go-store coverage: could not write {out}', file=sys.stderr)
            return 2
        print(f'wrote {out}')
    failures = check_thresholds(report, thresholds)
    for failure in failures:
        print(f'BELOW THRESHOLD: {failure}')
    return 1 if failures else 0
