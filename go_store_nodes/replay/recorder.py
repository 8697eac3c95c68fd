"""Record the graph's output and view topics, raw, into an MCAP bag (rosbags writer)."""

from __future__ import annotations

import pathlib
from typing import Callable, Mapping

from rclpy.node import Node

from ..bagio.topics import LATCHED_TOPICS, RECORDED_TOPICS
from ..bagio.writer import BagWriter
from .qos import message_class, subscription_qos


class Recorder:
    """Subscribes (raw=True) to output topics on ``node`` and writes what arrives.

    Each message is stored at the node's clock when it arrived (sim time when the
    node uses /clock); ``fallback_ns`` gives the time while that clock still reads 0.
    """

    def __init__(self, node: Node, bag: str | pathlib.Path,
                 topics: Mapping[str, str] = RECORDED_TOPICS,
                 fallback_ns: Callable[[], int] | None = None) -> None:
        """Open the output bag and subscribe to every topic."""
        self.node = node
        self.writer = BagWriter(bag)
        self.writer.open()
        self._fallback_ns = fallback_ns
        self._subscriptions = []
        for topic, msgtype in topics.items():
            self.writer.add_topic(topic, msgtype)
            self._subscriptions.append(node.create_subscription(
                message_class(msgtype), topic, self._callback(topic, msgtype),
                subscription_qos(node, topic, topic in LATCHED_TOPICS), raw=True))

    def _callback(self, topic: str, msgtype: str) -> Callable[[bytes], None]:
        def record(data: bytes) -> None:
            stamp_ns = self.node.get_clock().now().nanoseconds
            if stamp_ns == 0 and self._fallback_ns is not None:
                stamp_ns = self._fallback_ns()
            self.writer.write_raw(topic, msgtype, stamp_ns, data)
        return record

    @property
    def counts(self) -> dict[str, int]:
        """Messages recorded per topic."""
        return dict(self.writer.counts)

    def close(self, custom_data: Mapping[str, str] | None = None) -> None:
        """Stop recording and finish the bag (with custom_data in its metadata)."""
        for subscription in self._subscriptions:
            self.node.destroy_subscription(subscription)
        self._subscriptions = []
        for key, value in (custom_data or {}).items():
            self.writer.set_custom_data(key, value)
        self.writer.close()
