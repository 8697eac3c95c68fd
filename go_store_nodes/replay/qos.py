"""QoS profiles of the player and the recorder, and message classes by type name."""

from __future__ import annotations

import importlib

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

LATCHED_QOS = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
STREAM_DEPTH = 1000


def stream_qos(reliable: bool = True) -> QoSProfile:
    """Keep-last (deep), volatile; reliable unless the other side is best effort."""
    return QoSProfile(depth=STREAM_DEPTH, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE if reliable
                      else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def message_class(msgtype: str) -> type:
    """Return the rosidl Python class of ``pkg/msg/Name`` (importlib, no rosidl_runtime_py)."""
    package, kind, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


def subscription_qos(node: Node, topic: str, latched: bool) -> QoSProfile:
    """QoS that matches the topic's current publishers (like `ros2 bag record`)."""
    infos = node.get_publishers_info_by_topic(topic)
    reliable = not infos or any(
        i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
    if latched and reliable:
        return LATCHED_QOS
    return stream_qos(reliable)
