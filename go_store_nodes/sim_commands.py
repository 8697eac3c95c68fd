"""`go-store simulate`, `go-store replay` and `go-store eval`: bags, replay, evaluation.

simulate  scenario -> rosbag2 MCAP bag folder, and truth.json written somewhere else
replay    bag -> node graph (use_sim_time) -> output bag + report.json; never reads truth
eval      truth.json + output bag -> metrics table / JSON; exit 1 below min-metrics
Exit status: 0 fine, 1 a min-metrics bound failed, 2 bad input (files, arguments).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time
from typing import Any, TextIO

from .command_args import add_store_args, params_path, store_path

EXIT_OK = 0
EXIT_METRICS_FAILED = 1
EXIT_BAD_INPUT = 2


class Progress:
    """A small progress bar on stderr (one line per 10 s when it is not a terminal)."""

    def __init__(self, label: str, stream: TextIO | None = None,
                 min_interval_s: float = 0.25) -> None:
        """Start timing; nothing is printed until the first update."""
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.min_interval_s = min_interval_s if self.tty else 10.0
        self.start = time.monotonic()
        self._last = 0.0
        self._shown = False

    def __call__(self, done_s: float, total_s: float) -> None:
        """Show ``done_s`` of ``total_s`` bag seconds."""
        now = time.monotonic()
        if now - self._last < self.min_interval_s and done_s < total_s:
            return
        self._last = now
        wall = now - self.start
        fraction = min(done_s / total_s, 1.0) if total_s > 0 else 0.0
        bar = '#' * int(fraction * 30)
        speed = f'{done_s / wall:.2f}x' if wall > 0 else '-'
        text = (f'{self.label} [{bar:<30}] {fraction * 100:5.1f}% {done_s:7.1f}/{total_s:.1f} s '
                f'({wall:.1f} s wall, {speed})')
        self.stream.write(f'\r{text}' if self.tty else f'{text}\n')
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """End the line."""
        if self._shown and self.tty:
            self.stream.write('\n')
            self.stream.flush()


def _fail(message: str) -> int:
    print(f'go-store: {message}', file=sys.stderr)
    return EXIT_BAD_INPUT


def _scenario_path(name: str) -> pathlib.Path:
    path = pathlib.Path(name)
    if path.is_file() or path.suffix in ('.yaml', '.yml'):
        return path
    from .ros.share import share_dir
    return share_dir() / 'config' / 'scenarios' / f'{name}.yaml'


def _dir_size(path: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run a scenario and write its sensor bag, and its truth.json outside the bag."""
    from .bagio.simulate import (
        CUSTOM_SCENARIO,
        CUSTOM_SEED,
        CUSTOM_STORE,
        record_simulation,
        truth_outside_bag,
    )
    from .bagio.writer import prepare_output
    from .core.sim.scenario import load_scenario, ScenarioError
    from .core.store import load_store_description
    try:
        from .core.sim.render import Renderer
        from .core.sim.world import Simulation
    except ImportError as error:
        return _fail(f'the simulator is not available: {error}')
    try:
        scenario = load_scenario(_scenario_path(args.scenario))
        render = scenario.render
        if args.image_scale is not None:
            render = dataclasses.replace(render, image_scale=args.image_scale)
        if args.camera_fps is not None:
            render = dataclasses.replace(render, camera_fps=args.camera_fps)
        scenario = dataclasses.replace(
            scenario, render=render,
            duration_s=args.duration if args.duration is not None else scenario.duration_s,
            seed=args.seed if args.seed is not None else scenario.seed)
    except (ScenarioError, ValueError) as error:
        return _fail(str(error))
    description = load_store_description(scenario.store_path)
    cameras = None
    if args.cameras is not None:
        cameras = [c for c in args.cameras.split(',') if c]
        known = [c.camera_id for c in description.cameras]
        unknown = [c for c in cameras if c not in known]
        if unknown or not cameras:
            return _fail(f'--cameras: unknown camera(s) {", ".join(unknown) or "(none given)"}'
                         f'; known: {", ".join(known)}')
    out = pathlib.Path(args.out)
    truth_path = pathlib.Path(args.truth)
    try:
        truth_outside_bag(out, truth_path)
        prepare_output(out, args.overwrite)
    except (FileExistsError, ValueError) as error:
        return _fail(str(error))
    simulation = Simulation(scenario, description)
    renderer = Renderer(description, image_scale=scenario.render.image_scale,
                        seed=scenario.seed,
                        depth_noise_subpixel=scenario.sensors.depth_noise_subpixel)
    progress = Progress(f'simulate {scenario.name}') if not args.quiet else None
    custom = {CUSTOM_SCENARIO: scenario.name, CUSTOM_SEED: str(scenario.seed),
              CUSTOM_STORE: description.name,
              'go_store.image_scale': f'{scenario.render.image_scale:g}',
              'go_store.camera_fps': f'{scenario.render.camera_fps:g}',
              'go_store.duration_s': f'{scenario.duration_s:g}'}
    if cameras is not None:
        custom['go_store.cameras'] = ','.join(cameras)
    try:
        recorded = record_simulation(simulation, renderer, description, out, truth_path,
                                     total_s=scenario.duration_s, custom_data=custom,
                                     compression_level=args.compression_level,
                                     progress=progress, cameras=cameras)
    finally:
        if progress is not None:
            progress.close()
    total = sum(recorded.counts.values())
    print(f'wrote {out} ({_dir_size(out) / 1e6:.1f} MB, {total} messages on '
          f'{len(recorded.counts)} topics, {recorded.sim_duration_s:.1f} s of bag in '
          f'{recorded.wall_s:.1f} s) and {recorded.truth_path}')
    return EXIT_OK


def _print_report(report: Any, json_path: pathlib.Path | None,
                  min_metrics: str | None) -> int:
    from .bagio.evaluate import load_min_metrics, write_report
    from .core.evaluation import check_bounds, MinMetricsError
    print(report.table())
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_report(report, json_path)
        print(f'wrote {json_path}')
    if not min_metrics:
        return EXIT_OK
    try:
        bounds = load_min_metrics(min_metrics)
    except (OSError, MinMetricsError) as error:
        return _fail(f'{min_metrics}: {error}')
    failures = check_bounds(report, bounds)
    for failure in failures:
        print(f'FAIL {failure}', file=sys.stderr)
    if failures:
        print(f'go-store: {len(failures)} of {len(bounds)} min-metrics failed ({min_metrics})',
              file=sys.stderr)
        return EXIT_METRICS_FAILED
    print(f'all {len(bounds)} min-metrics pass ({min_metrics})')
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate an output bag against truth.json; draw the store map when asked."""
    from .bagio.evaluate import load_run, write_store_map
    from .bagio.reader import is_bag
    from .core.evaluation import (
        evaluate,
        EvaluationConfig,
        TruthDerivedOutputError,
        TruthFormatError,
    )
    from .core.store import StoreDescriptionError
    if not pathlib.Path(args.truth).is_file():
        return _fail(f'{args.truth}: truth file not found')
    if not is_bag(args.bag):
        return _fail(f'{args.bag}: not a rosbag2 folder (no metadata.yaml)')
    try:
        overrides = {'event_time_tolerance_s': args.event_tolerance_s,
                     'tracking_distance_m': args.tracking_distance_m}
        config = EvaluationConfig(**{k: v for k, v in overrides.items() if v is not None})
        truth, predictions = load_run(args.truth, args.bag)
        report = evaluate(truth, predictions, config)
    except TruthDerivedOutputError as error:
        return _fail(f'{args.bag}: {error}')
    except (TruthFormatError, ValueError, json.JSONDecodeError) as error:
        return _fail(str(error))
    json_path = pathlib.Path(args.json) if args.json else None
    status = _print_report(report, json_path, args.min_metrics)
    map_path = pathlib.Path(args.map) if args.map else (
        json_path.parent / 'store-map.png' if json_path is not None else None)
    if map_path is not None:
        try:
            written = write_store_map(truth, predictions, report, store_path(args), map_path,
                                      config)
        except (OSError, StoreDescriptionError, ValueError) as error:
            print(f'go-store: store map not written: {error}', file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f'wrote store map {written}')
    return status


def _print_receipts(output_bag: str | pathlib.Path) -> None:
    """Print every receipt the graph published during the replay."""
    from .bagio.predictions import load_predictions
    receipts = load_predictions(output_bag).receipts
    if not receipts:
        print('receipts: none published (no /receipts messages)')
        return
    print(f'receipts: {len(receipts)}')
    for receipt in receipts:
        state = 'issued' if receipt.issued else 'held for review'
        lines = ', '.join(f'{quantity} x {sku}' for sku, quantity in sorted(
            receipt.lines.items())) or 'no items'
        print(f'  {receipt.account_id} ({state}): {lines}; total '
              f'{receipt.total_cents / 100:.2f}')


def cmd_replay(args: argparse.Namespace) -> int:
    """Replay a bag through the node graph and record the outputs.

    Replay never reads ground truth: the graph runs in this process, so nothing here may
    have read truth. Evaluation is its own step, `go-store eval`, on the output bag.
    """
    from .bagio.reader import is_bag
    from .nodes.runner import CONFIGURATION_ERRORS
    from .replay.run import DomainInUseError, replay, ReplayOptions
    bag = pathlib.Path(args.bag)
    if not is_bag(bag):
        return _fail(f'{bag}: not a rosbag2 folder (no metadata.yaml)')
    out = pathlib.Path(args.out) if args.out else pathlib.Path(f'replay-{bag.resolve().name}')
    rate = None if args.as_fast_as_possible else args.rate
    try:
        options = ReplayOptions(rate=rate, tail_s=args.tail, domain_id=args.domain_id)
    except ValueError as error:
        return _fail(str(error))
    progress = Progress(f'replay {bag.name}') if not args.quiet else None
    try:
        report = replay(bag, out, options=options, store_path=store_path(args),
                        params_file=params_path(args),
                        report_path=args.report, overwrite=args.overwrite,
                        only_nodes=[n for n in (args.nodes or '').split(',') if n],
                        progress=progress)
    except (FileExistsError, ValueError, DomainInUseError, *CONFIGURATION_ERRORS) as error:
        return _fail(str(error))
    finally:
        if progress is not None:
            progress.close()
    recorded = ', '.join(f'{t} {n}' for t, n in sorted(report['recorded'].items()) if n)
    print(f'replayed {report["published"]} messages ({report["sim_s"]:.1f} s of bag) in '
          f'{report["wall_s"]:.1f} s: real-time factor {report["real_time_factor"]:.2f}; '
          f'recorded {recorded or "nothing"} -> {report["output_bag"]}; '
          f'report {report["report_path"]}')
    _print_receipts(report['output_bag'])
    print(f'evaluate: go-store eval --truth TRUTH.json --bag {report["output_bag"]}')
    return EXIT_OK


def add_subcommands(sub: Any) -> None:
    """Add simulate, replay and eval to the `go-store` subparsers."""
    from .core.evaluation import EvaluationConfig
    simulate = sub.add_parser('simulate', help='simulate a scenario into a rosbag2 MCAP bag')
    simulate.add_argument('scenario', help='scenario YAML, or a tier name of '
                          'config/scenarios (smoke, easy, busy, crowd, rush)')
    simulate.add_argument('--out', required=True, help='bag folder to write (must not exist)')
    simulate.add_argument('--truth', required=True,
                          help='where to write the ground truth (truth.json); outside --out, '
                          'so that nothing replaying the bag can read it')
    simulate.add_argument('--image-scale', type=float, help='override render.image_scale')
    simulate.add_argument('--camera-fps', type=float, help='override render.camera_fps')
    simulate.add_argument('--duration', type=float, help='override duration_s (s)')
    simulate.add_argument('--seed', type=int, help='override the scenario seed')
    simulate.add_argument('--compression-level', type=int,
                          help='zstd level of the MCAP chunks, 1-22 (default 3; 19 for '
                          'committed bags)')
    simulate.add_argument('--cameras', help='comma-separated camera ids: render and write '
                          'only these (default: every camera; /tf_static, load cells and '
                          'check-ins are unchanged)')
    simulate.add_argument('--overwrite', action='store_true',
                          help='replace --out when it is an existing bag')
    simulate.add_argument('--quiet', action='store_true', help='no progress bar')
    simulate.set_defaults(func=cmd_simulate)

    play = sub.add_parser('replay', help='play a bag through the node graph, record outputs')
    play.add_argument('bag', help='bag folder (rosbag2, MCAP)')
    speed = play.add_mutually_exclusive_group()
    speed.add_argument('--rate', type=float, default=1.0,
                       help='playback speed: bag seconds per wall second (default 1)')
    speed.add_argument('--as-fast-as-possible', action='store_true',
                       help='as fast as the graph keeps up (waits for it every time step)')
    play.add_argument('--out', help='output folder (default ./replay-<bag name>)')
    play.add_argument('--report', help='replay report JSON (default OUTDIR/report.json)')
    play.add_argument('--tail', type=float,
                      help='bag seconds of /clock after the last message, run as fast as '
                      'the graph keeps up (default: the longest grace_period_s of the '
                      'params + 5 s, at least 2 s)')
    play.add_argument('--params', help='params file (default: the package config/go_store.yaml)')
    play.add_argument('--domain-id', type=int,
                      help='DDS domain of the replay, discovery on this machine only '
                      '(default: the first one in [1, 100] from the process id on that has '
                      'no nodes, never ROS_DOMAIN_ID: a replay never reaches a live store '
                      'graph or another replay; a given one that has nodes is refused)')
    play.add_argument('--nodes', help='comma-separated node names: start only these '
                      '(default: every project node of the graph)')
    play.add_argument('--overwrite', action='store_true',
                      help='replace an existing OUTDIR/bag')
    play.add_argument('--quiet', action='store_true', help='no progress bar')
    add_store_args(play)
    play.set_defaults(func=cmd_replay)

    evaluate = sub.add_parser('eval', help='metrics of an output bag against truth.json')
    evaluate.add_argument('--truth', required=True, help='truth.json of the simulated bag')
    evaluate.add_argument('--bag', required=True, help='output bag of `go-store replay`')
    evaluate.add_argument('--json', help='write the report as JSON here')
    evaluate.add_argument('--map', help='draw the store map here (PNG): floor plan, tracks '
                          'over the true paths, shelf events hit/missed/false, the receipt of '
                          'every account against the truth (default: store-map.png beside '
                          '--json when --json is given; none otherwise)')
    evaluate.add_argument('--min-metrics', help='min-metrics YAML: exit 1 when a bound fails')
    defaults = EvaluationConfig()
    evaluate.add_argument('--event-tolerance-s', type=float,
                          help='time tolerance matching shelf/cart events to truth (s; '
                          f'default {defaults.event_time_tolerance_s:g})')
    evaluate.add_argument('--tracking-distance-m', type=float,
                          help='ground-plane match threshold for MOTA/IDF1 (m; default '
                          f'{defaults.tracking_distance_m:g})')
    add_store_args(evaluate)
    evaluate.set_defaults(func=cmd_eval)
