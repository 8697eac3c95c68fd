"""Approximate-time frame sets over unsynchronised cameras, never blocked by a missing one.

Observations wait per camera in stamp order. A set starts at the earliest waiting stamp
(the anchor) and takes each camera's first observation within ``tolerance_ns`` of it. It
is emitted once every live camera (one that delivered within ``outage_ns`` of the newest
stamp) is in it, or once the newest stamp or the clock is more than ``tolerance_ns +
max_wait_ns`` past the anchor: a dropped frame or a stalled camera delays a set by at
most that, and a camera in outage is not waited for at all.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, Iterable, Protocol, TypeVar

from .frames import FrameRejectedError


class Stamped(Protocol):
    """Anything with a camera id and a capture stamp."""

    @property
    def camera_id(self) -> str:
        """Camera that captured it."""

    @property
    def stamp_ns(self) -> int:
        """Capture time, ns."""


T = TypeVar('T', bound=Stamped)


@dataclass(frozen=True)
class FrameSet(Generic[T]):
    """Observations of several cameras taken as one instant."""

    stamp_ns: int                      # mean stamp of the members
    members: tuple[T, ...]


class FrameSetAssembler(Generic[T]):
    """Groups per-camera observations into approximate-time frame sets."""

    def __init__(self, cameras: Iterable[str], tolerance_ns: int, max_wait_ns: int,
                 outage_ns: int) -> None:
        """Configure the cameras, the grouping window, the wait for missing ones, liveness."""
        if min(tolerance_ns, max_wait_ns, outage_ns) < 0:
            raise ValueError('tolerance, wait and outage must be >= 0 ns')
        self.cameras = frozenset(cameras)
        self._first_ns: int | None = None
        self.tolerance_ns = tolerance_ns
        self.max_wait_ns = max_wait_ns
        self.outage_ns = outage_ns
        self._pending: dict[str, deque[T]] = {}
        self._last_stamp: dict[str, int] = {}
        self._newest_ns: int | None = None
        self._emitted_until_ns: int | None = None

    def add(self, item: T) -> list[FrameSet[T]]:
        """Queue one observation; return the sets it completes (oldest first).

        Raises FrameRejectedError ('out_of_order', 'late') for an observation not newer than
        the camera's last one, or one whose set was already emitted without it.
        """
        camera, stamp = item.camera_id, item.stamp_ns
        last = self._last_stamp.get(camera)
        if last is not None and stamp <= last:
            raise FrameRejectedError('out_of_order', f'stamp {stamp} is not after the previous '
                                f'frame of {camera} ({last}), {(last - stamp) / 1e6:.1f} ms '
                                'earlier')
        if self._emitted_until_ns is not None and stamp <= self._emitted_until_ns:
            raise FrameRejectedError('late', f'frame of {camera} arrived after its frame set '
                                f'({(self._emitted_until_ns - stamp) / 1e6:.1f} ms past the '
                                'set window) was emitted')
        self._last_stamp[camera] = stamp
        self._pending.setdefault(camera, deque()).append(item)
        self._newest_ns = stamp if self._newest_ns is None else max(self._newest_ns, stamp)
        self._first_ns = stamp if self._first_ns is None else self._first_ns
        return self._emit(self._newest_ns)

    def flush(self, now_ns: int) -> list[FrameSet[T]]:
        """Emit sets whose wait is over by the clock ``now_ns`` (all cameras quiet)."""
        return self._emit(now_ns)

    def live_cameras(self) -> set[str]:
        """Cameras that delivered within ``outage_ns`` of the newest stamp.

        At start-up, cameras that have not delivered yet count as live for ``outage_ns``.
        """
        if self._newest_ns is None or self._first_ns is None:
            return set()
        since = self._newest_ns - self.outage_ns
        starting = self._first_ns >= since
        return {c for c in self.cameras
                if (c in self._last_stamp and self._last_stamp[c] >= since)
                or (c not in self._last_stamp and starting)}

    def _emit(self, now_ns: int) -> list[FrameSet[T]]:
        sets: list[FrameSet[T]] = []
        while True:
            heads = {c: q[0] for c, q in self._pending.items() if q}
            if not heads:
                return sets
            anchor = min(item.stamp_ns for item in heads.values())
            window_end = anchor + self.tolerance_ns
            members = {c: item for c, item in heads.items() if item.stamp_ns <= window_end}
            complete = self.live_cameras() <= set(members)
            waited = now_ns - window_end > self.max_wait_ns
            if not (complete or waited):
                return sets
            for camera in members:
                self._pending[camera].popleft()
            ordered = tuple(members[c] for c in sorted(members))
            stamp = sum(item.stamp_ns for item in ordered) // len(ordered)   # exact ns
            self._emitted_until_ns = window_end
            sets.append(FrameSet(stamp, ordered))
