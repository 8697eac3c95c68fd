"""Publish a bag's messages as they were recorded, with /clock, on an rclpy node.

Messages go out as raw CDR bytes (``Publisher.publish(bytes)``) on publishers of the
right types; latched topics (/tf_static) keep transient-local QoS. The caller drives
the executor: ``BagPlayer.play`` calls ``wait(timeout_s)`` between messages (paced mode)
and ``settle()`` after each time step (as-fast-as-possible mode).
"""

from __future__ import annotations

from dataclasses import dataclass
import pathlib
import time
from typing import Callable, Iterable

from rclpy.duration import Duration
from rclpy.node import Node
from rosgraph_msgs.msg import Clock

from ..bagio.reader import raw_records, RawRecord, summarize
from ..bagio.topics import CLOCK_TOPIC, LATCHED_TOPICS
from .qos import LATCHED_QOS, message_class, stream_qos

_NS = 1_000_000_000


@dataclass
class PlaybackStats:
    """What a playback did, and how fast."""

    published: int = 0
    clock_messages: int = 0
    first_ns: int = 0
    last_ns: int = 0
    wall_s: float = 0.0

    @property
    def sim_s(self) -> float:
        """Bag time covered (s)."""
        return (self.last_ns - self.first_ns) / _NS

    @property
    def real_time_factor(self) -> float:
        """Bag seconds played per wall second."""
        return self.sim_s / self.wall_s if self.wall_s > 0 else 0.0


class BagPlayer:
    """Publishes the messages of one bag on ``node``, and /clock."""

    def __init__(self, node: Node, bag: str | pathlib.Path,
                 skip_topics: Iterable[str] = ()) -> None:
        """Create a publisher per topic of the bag (and /clock) on ``node``."""
        self.node = node
        self.bag = pathlib.Path(bag)
        skip = set(skip_topics)
        self.summary = {t: s for t, s in summarize(self.bag).items()
                        if t not in skip and s.count}
        self.publishers = {}
        for topic, info in sorted(self.summary.items()):
            latched = info.latched or topic in LATCHED_TOPICS
            self.publishers[topic] = node.create_publisher(
                message_class(info.msgtype), topic, LATCHED_QOS if latched else stream_qos())
        self.clock_publisher = node.create_publisher(Clock, CLOCK_TOPIC, stream_qos(False))
        self.first_ns = min((s.first_ns for s in self.summary.values()), default=0)
        self.last_ns = max((s.last_ns for s in self.summary.values()), default=0)
        self.now_ns = self.first_ns
        self.stats = PlaybackStats(first_ns=self.first_ns, last_ns=self.first_ns)

    def publish_clock(self, stamp_ns: int) -> None:
        """Publish /clock = ``stamp_ns`` (never backwards)."""
        stamp_ns = max(int(stamp_ns), self.now_ns)
        self.now_ns = stamp_ns
        msg = Clock()
        msg.clock.sec, msg.clock.nanosec = divmod(stamp_ns, _NS)
        self.clock_publisher.publish(msg)
        self.stats.clock_messages += 1

    def wait_for_subscribers(self, timeout_s: float, spin: Callable[[float], None]) -> None:
        """Wait until each publisher matched every subscriber the graph knows of."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pending = [t for t, p in self.publishers.items()
                       if p.get_subscription_count() < self.node.count_subscribers(t)]
            if not pending:
                return
            spin(0.05)

    def _records(self) -> Iterable[RawRecord]:
        return raw_records(self.bag, self.publishers)

    def play(self, rate: float | None, wait: Callable[[float], None],
             settle: Callable[[], None], clock_hz: float = 100.0,
             progress: Callable[[float, float], None] | None = None) -> PlaybackStats:
        """Publish every message at bag time / ``rate`` (None: as fast as possible).

        Paced: between messages /clock advances at ``clock_hz`` (wall) and ``wait``
        serves callbacks. As fast as possible: after each bag time step, /clock jumps
        to it and ``settle`` lets the graph finish its work first.
        """
        if rate is not None and not rate > 0.0:
            raise ValueError(f'rate must be > 0, got {rate}')
        total_s = (self.last_ns - self.first_ns) / _NS
        self.publish_clock(self.first_ns)
        wall_start = time.monotonic()
        clock_period = 1.0 / clock_hz
        next_clock = wall_start + clock_period
        pending_stamp: int | None = None
        last_progress = 0.0
        for record in self._records():
            if rate is None:
                if pending_stamp is not None and record.stamp_ns != pending_stamp:
                    settle()
                if record.stamp_ns != pending_stamp:
                    self.publish_clock(record.stamp_ns)
                    pending_stamp = record.stamp_ns
            else:
                due = wall_start + (record.stamp_ns - self.first_ns) / _NS / rate
                while (now := time.monotonic()) < due:
                    if now >= next_clock:
                        sim_ns = self.first_ns + int((now - wall_start) * rate * _NS)
                        self.publish_clock(min(sim_ns, record.stamp_ns))
                        next_clock = now + clock_period
                    wait(max(0.0, min(due, next_clock) - now))
                if record.stamp_ns > self.now_ns:
                    self.publish_clock(record.stamp_ns)
            self.publishers[record.topic].publish(record.data)
            self.stats.published += 1
            self.stats.last_ns = record.stamp_ns
            if progress is not None and time.monotonic() - last_progress > 0.2:
                last_progress = time.monotonic()
                progress((record.stamp_ns - self.first_ns) / _NS, total_s)
        if rate is None:
            settle()
        self.stats.wall_s = time.monotonic() - wall_start
        if progress is not None:
            progress(total_s, total_s)
        return self.stats

    def wait_for_acks(self, timeout_s: float = 5.0) -> bool:
        """Wait until every reliable subscriber acknowledged what was published."""
        timeout = Duration(nanoseconds=int(timeout_s * _NS))
        return all(p.wait_for_all_acked(timeout) for p in self.publishers.values())
