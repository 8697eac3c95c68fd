"""Starting nodes: one node per process (``ros2 run``), or many in one executor."""

from __future__ import annotations

from typing import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node

from ..core.store import StoreDescriptionError
from ..ros.params import MissingParameterError

# Errors that mean "this configuration cannot run": logged as one clear line, exit 1.
CONFIGURATION_ERRORS = (StoreDescriptionError, MissingParameterError)


def run_single_node(factory: Callable[..., Node], args: Sequence[str] | None = None) -> int:
    """Init rclpy, build one node and spin it; return the process exit status."""
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
    finally:
        executor.shutdown()
