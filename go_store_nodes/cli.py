"""The `go-store` command: start the store's nodes here, print the graph, write the URDF.

On store hardware `ros2 launch go_store store.launch.py` starts the camera drivers
and the nodes; `go-store run` starts the same project nodes, from the same node list
(go_store_nodes.core.graph), where ROS 2 launch is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import pathlib
import signal
import subprocess
import sys
import time
from typing import Iterator, Sequence

from .core.graph import NodeSpec, store_graph
from .core.store import load_store_description, StoreDescriptionError
from .core.urdf import store_urdf


def _share():
    from .ros import share
    return share


def _add_store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--store', default=None,
                        help='store description YAML (default: the package config/store.yaml)')


def _store_path(args: argparse.Namespace) -> str:
    return str(pathlib.Path(args.store).resolve()) if args.store else str(
        _share().default_store_description())


def _specs(args: argparse.Namespace, with_cameras: bool) -> list[NodeSpec]:
    path = _store_path(args)
    return store_graph(load_store_description(path), path, with_cameras=with_cameras)


def node_factory(spec: NodeSpec):
    """Return the Node class of a project node (module go_store_nodes.nodes.<executable>)."""
    module = importlib.import_module(f'go_store_nodes.nodes.{spec.executable}')
    return module.NODE


def _ros_args(params_file: str, spec: NodeSpec, use_sim_time: bool) -> list[str]:
    args = ['--ros-args', '-r', f'__node:={spec.name}']
    if spec.namespace:
        args += ['-r', f'__ns:=/{spec.namespace}']
    if spec.uses_params_file:
        args += ['--params-file', params_file]
    for name, value in spec.parameters.items():
        args += ['-p', f'{name}:={json.dumps(value) if not isinstance(value, str) else value}']
    args += ['-p', f'use_sim_time:={"true" if use_sim_time else "false"}']
    for source, target in spec.remappings:
        args += ['-r', f'{source}:={target}']
    return args


def _parameter_overrides(spec: NodeSpec, use_sim_time: bool) -> list:
    from rclpy.parameter import Parameter
    overrides = [Parameter(name, value=value) for name, value in spec.parameters.items()]
    overrides.append(Parameter('use_sim_time', value=use_sim_time))
    return overrides


def start_nodes_in_process(specs: Sequence[NodeSpec], params_file: str,
                           use_sim_time: bool) -> list:
    """Create every project node in this process (rclpy must be initialised)."""
    nodes = []
    for spec in specs:
        factory = node_factory(spec)
        nodes.append(factory(namespace=spec.namespace or None,
                             parameter_overrides=_parameter_overrides(spec, use_sim_time)))
    return nodes


@contextlib.contextmanager
def graph_in_process(specs: Sequence[NodeSpec], params_file: str,
                     use_sim_time: bool) -> Iterator[list]:
    """Initialise rclpy and create the project's nodes; destroy them and shut down after.

    Yields the list of nodes; the caller may append nodes of its own (destroyed too).
    """
    import rclpy
    rclpy.init(args=['--ros-args', '--params-file', params_file])
    nodes: list = []
    try:
        nodes.extend(start_nodes_in_process(specs, params_file, use_sim_time))
        yield nodes
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()


def _project_specs(args: argparse.Namespace) -> tuple[list[NodeSpec], str]:
    specs = [s for s in _specs(args, with_cameras=False) if not s.hardware_only]
    return specs, args.params or str(_share().default_params_file())


def cmd_run(args: argparse.Namespace) -> int:
    """Start the project's nodes: one executor, or one process per node."""
    specs, params_file = _project_specs(args)
    if args.processes:
        return _run_processes(specs, params_file, args.use_sim_time, args.duration)
    from .nodes.runner import CONFIGURATION_ERRORS, spin_nodes
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
    processes = [subprocess.Popen(
        [sys.executable, '-m', f'go_store_nodes.nodes.{spec.executable}',
         *_ros_args(params_file, spec, use_sim_time)]) for spec in specs]
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
    from .nodes.runner import CONFIGURATION_ERRORS, spin_nodes
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
    text = store_urdf(load_store_description(_store_path(args)))
    out = pathlib.Path(args.out) if args.out else _share().share_dir() / 'urdf' / 'store.urdf'
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


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of `go-store`."""
    parser = argparse.ArgumentParser(prog='go-store', description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)

    run = sub.add_parser('run', help="start the project's nodes (no camera drivers)")
    _add_store_args(run)
    run.add_argument('--params', help='params file (default: the package config/go_store.yaml)')
    run.add_argument('--use-sim-time', action='store_true', help='nodes follow /clock')
    run.add_argument('--processes', action='store_true',
                     help='one process per node instead of one multi-threaded executor')
    run.add_argument('--duration', type=float, default=0.0,
                     help='stop after this many seconds (0: run until Ctrl-C)')
    run.set_defaults(func=cmd_run)

    inspect = sub.add_parser('inspect',
                             help='start the nodes and show live TF frames and topics')
    _add_store_args(inspect)
    inspect.add_argument('--params',
                         help='params file (default: the package config/go_store.yaml)')
    inspect.add_argument('--duration', type=float, default=3.0, help='seconds to watch')
    inspect.set_defaults(func=cmd_inspect)

    nodes = sub.add_parser('nodes', help='print the node graph as JSON')
    _add_store_args(nodes)
    nodes.add_argument('--without-cameras', action='store_true',
                       help='leave out the realsense2_camera drivers')
    nodes.set_defaults(func=cmd_nodes)

    urdf = sub.add_parser('urdf', help='write (or --check) urdf/store.urdf from the description')
    _add_store_args(urdf)
    urdf.add_argument('--out', help='where to write (default: the package urdf/store.urdf)')
    urdf.add_argument('--check', action='store_true', help='only check it is up to date')
    urdf.set_defaults(func=cmd_urdf)

    from . import calibrate_command
    calibrate_command.add_subcommand(sub, _store_path)

    from . import coverage_command
    coverage_command.add_subcommand(sub, _store_path)

    from . import sim_commands
    sim_commands.add_subcommands(sub)
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
