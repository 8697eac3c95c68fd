"""The `go-store` command: start the store's nodes here, print the graph, write the URDF.

On store hardware `ros2 launch go_store store.launch.py` starts the camera drivers
and the nodes; `go-store run` starts the same project nodes, from the same node list
(go_store_nodes.core.graph), where ROS 2 launch is not installed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import signal
import subprocess
import sys
import time
from typing import Sequence

from .command_args import add_store_args, params_path, store_path
from .core.graph import NodeSpec, store_graph
from .core.store import load_store_description, StoreDescriptionError
from .core.urdf import store_urdf
from .ros import share


def _specs(args: argparse.Namespace, with_cameras: bool) -> list[NodeSpec]:
    path = store_path(args)
    return store_graph(load_store_description(path), path, with_cameras=with_cameras)


def _project_specs(args: argparse.Namespace) -> tuple[list[NodeSpec], str]:
    specs = [s for s in _specs(args, with_cameras=False) if not s.hardware_only]
    return specs, params_path(args)


def cmd_run(args: argparse.Namespace) -> int:
    """Start the project's nodes: one executor, or one process per node."""
    specs, params_file = _project_specs(args)
    if args.processes:
        return _run_processes(specs, params_file, args.use_sim_time, args.duration)
    from .nodes.runner import CONFIGURATION_ERRORS, graph_in_process, spin_nodes
    try:
        with graph_in_process(specs, params_file, args.use_sim_time) as nodes:
            print(f'go-store: running {", ".join(s.full_name for s in specs)} '
                  '(Ctrl-C to stop)', flush=True)
            deadline = time.monotonic() + args.duration if args.duration else None
            spin_nodes(nodes, until=(lambda: time.monotonic() > deadline) if deadline else None)
    except CONFIGURATION_ERRORS as error:
        print(f'go-store: {error}', file=sys.stderr)
        return 1
    return 0


def _run_processes(specs: Sequence[NodeSpec], params_file: str, use_sim_time: bool,
                   duration: float) -> int:
    from .nodes.runner import ros_arguments
    processes = [subprocess.Popen(
        [sys.executable, '-m', f'go_store_nodes.nodes.{spec.executable}',
         *ros_arguments(params_file, spec, use_sim_time)]) for spec in specs]
    print(f'go-store: started {len(processes)} node processes (Ctrl-C to stop)', flush=True)
    status = 0
    try:
        deadline = time.monotonic() + duration if duration else None
        while all(p.poll() is None for p in processes):
            if deadline and time.monotonic() > deadline:
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                code = process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            if code not in (0, -signal.SIGINT):
                status = 1
    return status


def cmd_inspect(args: argparse.Namespace) -> int:
    """Start the store's nodes, then show the TF frames and topics seen live over DDS."""
    from .nodes.monitor import GraphMonitor
    from .nodes.runner import CONFIGURATION_ERRORS, graph_in_process, spin_nodes
    specs, params_file = _project_specs(args)
    try:
        with graph_in_process(specs, params_file, use_sim_time=False) as nodes:
            monitor = GraphMonitor()
            nodes.append(monitor)
            deadline = time.monotonic() + args.duration
            spin_nodes(nodes, until=lambda: time.monotonic() > deadline)
            print(monitor.report())
    except CONFIGURATION_ERRORS as error:
        print(f'go-store: {error}', file=sys.stderr)
        return 1
    return 0


def cmd_nodes(args: argparse.Namespace) -> int:
    """Print the node graph as JSON: what the launch file and `go-store run` start."""
    specs = _specs(args, with_cameras=not args.without_cameras)
    print(json.dumps([dataclasses.asdict(s) for s in specs], indent=2, default=list))
    return 0


def cmd_urdf(args: argparse.Namespace) -> int:
    """Write the URDF generated from the store description, or check the committed one."""
    text = store_urdf(load_store_description(store_path(args)))
    out = pathlib.Path(args.out) if args.out else share.share_dir() / 'urdf' / 'store.urdf'
    if args.check:
        if not out.is_file() or out.read_text() != text:
            print(f'go-store: {out} differs from the store description; '
                  'run `go-store urdf` to regenerate it', file=sys.stderr)
            return 1
        print(f'{out} matches the store description')
        return 0
    out.write_text(text)
    print(f'wrote {out}')
    return 0


def cmd_operator_password(args: argparse.Namespace) -> int:
    """Print a staff credential line for the operator page's ``staff_credentials``."""
    import getpass

    from .core.operator.auth import hash_password, USER_PATTERN
    if not USER_PATTERN.match(args.name):
        print('go-store: the name may hold letters, digits, _ . @ - (1-64)', file=sys.stderr)
        return 1
    if args.stdin:
        password = sys.stdin.readline().rstrip('\n')
    else:
        password = getpass.getpass(f'password for {args.name}: ')
        if getpass.getpass('again: ') != password:
            print('go-store: the passwords differ', file=sys.stderr)
            return 1
    if len(password) < args.min_length:
        print(f'go-store: use at least {args.min_length} characters', file=sys.stderr)
        return 1
    print(f'{args.name}:{hash_password(password)}')
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of `go-store`."""
    parser = argparse.ArgumentParser(prog='go-store', description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)

    run = sub.add_parser('run', help="start the project's nodes (no camera drivers)")
    add_store_args(run)
    run.add_argument('--params', help='params file (default: the package config/go_store.yaml)')
    run.add_argument('--use-sim-time', action='store_true', help='nodes follow /clock')
    run.add_argument('--processes', action='store_true',
                     help='one process per node instead of one multi-threaded executor')
    run.add_argument('--duration', type=float, default=0.0,
                     help='stop after this many seconds (0: run until Ctrl-C)')
    run.set_defaults(func=cmd_run)

    inspect = sub.add_parser('inspect',
                             help='start the nodes and show live TF frames and topics')
    add_store_args(inspect)
    inspect.add_argument('--params',
                         help='params file (default: the package config/go_store.yaml)')
    inspect.add_argument('--duration', type=float, default=3.0, help='seconds to watch')
    inspect.set_defaults(func=cmd_inspect)

    nodes = sub.add_parser('nodes', help='print the node graph as JSON')
    add_store_args(nodes)
    nodes.add_argument('--without-cameras', action='store_true',
                       help='leave out the realsense2_camera drivers')
    nodes.set_defaults(func=cmd_nodes)

    urdf = sub.add_parser('urdf', help='write (or --check) urdf/store.urdf from the description')
    add_store_args(urdf)
    urdf.add_argument('--out', help='where to write (default: the package urdf/store.urdf)')
    urdf.add_argument('--check', action='store_true', help='only check it is up to date')
    urdf.set_defaults(func=cmd_urdf)

    password = sub.add_parser(
        'operator-password',
        help="print NAME:scrypt-hash for the operator page's staff_credentials")
    password.add_argument('name', help='staff name used to sign in (and in resolved_by)')
    password.add_argument('--stdin', action='store_true',
                          help='read the password from the first line of stdin')
    password.add_argument('--min-length', type=int, default=10,
                          help='refuse shorter passwords (default 10)')
    password.set_defaults(func=cmd_operator_password)

    from . import calibrate_command
    calibrate_command.add_subcommand(sub, store_path)

    from . import coverage_command
    coverage_command.add_subcommand(sub, store_path)

    from . import sim_commands
    sim_commands.add_subcommands(sub)

    from . import video_command
    video_command.add_subcommand(sub)
    from . import catalog_images_command
    catalog_images_command.add_subcommand(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `go-store`."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except StoreDescriptionError as error:
        print(f'go-store: {error}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
