"""Starting nodes: one node per process (``ros2 run``), or the graph in one executor."""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import json
import signal
from typing import Callable, Iterator, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.subscription import RCLError

from ..core.graph import NodeSpec
from ..core.store import StoreDescriptionError
from ..ros.params import MissingParameterError

# Errors that mean "this configuration cannot run": logged as one clear line, exit 1.
CONFIGURATION_ERRORS = (StoreDescriptionError, MissingParameterError)


def run_single_node(factory: Callable[..., Node], args: Sequence[str] | None = None) -> int:
    """Init rclpy, build one node and spin it; return the process exit status.

    ``kill -USR1 PID`` prints the stack of every thread of the node to stderr (for a node
    that does not stop or answer); the node keeps running.
    """
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    rclpy.init(args=args)
    node = None
    try:
        node = factory()
        rclpy.spin(node)
    except CONFIGURATION_ERRORS as error:
        rclpy.logging.get_logger(getattr(factory, '__name__', 'go_store')).fatal(str(error))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        # rclpy's SIGINT handler shuts the context down from another thread; an executor
        # building its wait set just then fails with "the given context is not valid"
        # instead of ExternalShutdownException. A normal stop (it made nodes exit 1 on
        # Ctrl-C now and then); any other RCLError is a failure.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def spin_nodes(nodes: Sequence[Node], until: Callable[[], bool] | None = None) -> None:
    """Spin nodes in one multi-threaded executor until shutdown or ``until()`` is true."""
    executor = MultiThreadedExecutor()
    for node in nodes:
        executor.add_node(node)
    try:
        while rclpy.ok() and (until is None or not until()):
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        if rclpy.ok():      # see run_single_node: SIGINT's shutdown racing the spin
            raise
    finally:
        executor.shutdown()


def node_factory(spec: NodeSpec) -> Callable[..., Node]:
    """Return the Node class of a project node (module go_store_nodes.nodes.<executable>)."""
    module = importlib.import_module(f'go_store_nodes.nodes.{spec.executable}')
    return module.NODE


def ros_arguments(params_file: str, spec: NodeSpec, use_sim_time: bool) -> list[str]:
    """Return the ``--ros-args`` of one node, as the launch file gives them.

    Name, namespace, params file, the spec's parameters, use_sim_time and remappings:
    the same for a node process (``python -m go_store_nodes.nodes.<executable>``) and a
    node created in this process (``cli_args``), so both run under the launch file's
    names with its remappings and parameters.
    """
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


def start_nodes_in_process(specs: Sequence[NodeSpec], params_file: str,
                           use_sim_time: bool) -> list[Node]:
    """Create every project node in this process (rclpy must be initialised).

    Each node gets its own ``cli_args`` (``ros_arguments``), and global ROS arguments
    are not applied to it, so a node's name, namespace, remappings and parameters are
    exactly those of the launch file.
    """
    nodes: list[Node] = []
    for spec in specs:
        factory = node_factory(spec)
        nodes.append(factory(cli_args=ros_arguments(params_file, spec, use_sim_time),
                             use_global_arguments=False))
    return nodes


@contextlib.contextmanager
def graph_in_process(specs: Sequence[NodeSpec], params_file: str,
                     use_sim_time: bool) -> Iterator[list[Node]]:
    """Initialise rclpy and create the project's nodes; destroy them and shut down after.

    Yields the list of nodes; the caller may append nodes of its own (destroyed too).
    """
    rclpy.init()
    nodes: list[Node] = []
    try:
        nodes.extend(start_nodes_in_process(specs, params_file, use_sim_time))
        yield nodes
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
