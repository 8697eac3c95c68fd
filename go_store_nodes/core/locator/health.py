"""Health of each camera: frame rate, drops, latency, clock offset, outage.

Rates and latencies come from header stamps and receive times on the locator's clock
(the node passes its clock, simulated time in a replay). Each camera's frame period is
measured (the median of its recent stamp intervals; the model's nominal period until
``MIN_INTERVALS`` are in): a camera configured below its model's rate, or a bag recorded
at a reduced rate, is judged by the rate it runs at. Drops are stamp gaps longer than
1.5 frame periods (the missing frames are counted) plus the frames the locator rejected,
by reason. An outage is a camera without a frame for ``outage_ns``
on the receive clock (or 2.5 measured frame intervals, if longer).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
import statistics

EMA_WEIGHT = 0.1
# Stamp intervals kept per camera for its measured frame period, and how many it needs.
INTERVALS_KEPT = 31
MIN_INTERVALS = 5


@dataclass
class CameraHealth:
    """Running figures of one camera."""

    camera_id: str
    nominal_period_ns: int
    frames: int = 0
    missed_frames: int = 0             # estimated from stamp gaps
    rejected: dict[str, int] = field(default_factory=dict)
    fps: float = 0.0                   # EMA of 1 / stamp interval
    latency_s: float = 0.0             # EMA of receive time - stamp
    max_latency_s: float = 0.0
    offset_s: float = 0.0              # EMA of stamp - frame set stamp
    last_stamp_ns: int | None = None
    last_received_ns: int | None = None
    in_outage: bool = False
    intervals_ns: deque[int] = field(default_factory=lambda: deque(maxlen=INTERVALS_KEPT))

    @property
    def period_ns(self) -> int:
        """The camera's frame period: measured (median interval) once known, else nominal."""
        if len(self.intervals_ns) < MIN_INTERVALS:
            return self.nominal_period_ns
        return int(statistics.median(self.intervals_ns))

    def summary(self) -> dict[str, str]:
        """Key/values for diagnostics (keys prefixed by the camera id)."""
        prefix = self.camera_id
        values = {
            f'{prefix}.state': 'outage' if self.in_outage else (
                'ok' if self.frames else 'waiting'),
            f'{prefix}.frames': str(self.frames),
            f'{prefix}.fps': f'{self.fps:.1f}',
            f'{prefix}.missed_frames': str(self.missed_frames),
            f'{prefix}.latency_ms': f'{1000.0 * self.latency_s:.1f}',
            f'{prefix}.max_latency_ms': f'{1000.0 * self.max_latency_s:.1f}',
            f'{prefix}.clock_offset_ms': f'{1000.0 * self.offset_s:.1f}',
        }
        for reason, count in sorted(self.rejected.items()):
            values[f'{prefix}.dropped_{reason}'] = str(count)
        return values


@dataclass(frozen=True)
class OutageChange:
    """A camera went into outage (``started``) or came back."""

    camera_id: str
    started: bool
    silent_s: float                    # seconds since its last frame (at the check)


def _missed(gap_ns: int, period_ns: int) -> int:
    """Return the frames missing in a stamp gap (a gap over 1.5 periods)."""
    return int(round(gap_ns / period_ns)) - 1 if gap_ns > 1.5 * period_ns else 0


class HealthMonitor:
    """Health of every camera of the store."""

    def __init__(self, nominal_fps: dict[str, float], outage_ns: int) -> None:
        """Track the cameras named with their nominal frame rates."""
        self.cameras = {c: CameraHealth(c, int(round(1e9 / fps)))
                        for c, fps in nominal_fps.items()}
        self.outage_ns = outage_ns
        self._started_ns: int | None = None

    def frame(self, camera_id: str, stamp_ns: int, received_ns: int | None) -> None:
        """Record an accepted frame."""
        health = self.cameras[camera_id]
        if health.last_stamp_ns is not None and stamp_ns > health.last_stamp_ns:
            gap = stamp_ns - health.last_stamp_ns
            health.intervals_ns.append(gap)
            period = health.period_ns
            if len(health.intervals_ns) == MIN_INTERVALS:
                # The period is known now: count the first gaps against it, not the model's.
                health.missed_frames = sum(_missed(g, period) for g in health.intervals_ns)
            else:
                health.missed_frames += _missed(gap, period)
            rate = 1e9 / gap
            health.fps = rate if health.frames < 2 else (
                (1.0 - EMA_WEIGHT) * health.fps + EMA_WEIGHT * rate)
        health.frames += 1
        health.last_stamp_ns = stamp_ns
        if received_ns is not None:
            latency = (received_ns - stamp_ns) * 1e-9
            health.latency_s = latency if health.frames == 1 else (
                (1.0 - EMA_WEIGHT) * health.latency_s + EMA_WEIGHT * latency)
            health.max_latency_s = max(health.max_latency_s, latency)
            health.last_received_ns = received_ns

    def rejected(self, camera_id: str, reason: str, received_ns: int | None) -> None:
        """Record a dropped frame; it still shows the camera is alive."""
        health = self.cameras[camera_id]
        health.rejected[reason] = health.rejected.get(reason, 0) + 1
        if received_ns is not None:
            health.last_received_ns = received_ns

    def frame_set(self, stamp_ns: int, member_stamps: dict[str, int]) -> None:
        """Record how far each member of a frame set was from the set's stamp."""
        for camera_id, member_ns in member_stamps.items():
            health = self.cameras[camera_id]
            offset = (member_ns - stamp_ns) * 1e-9
            health.offset_s = (1.0 - EMA_WEIGHT) * health.offset_s + EMA_WEIGHT * offset

    def check(self, now_ns: int) -> list[OutageChange]:
        """Flag cameras silent for ``outage_ns`` at ``now_ns``; return what changed."""
        if self._started_ns is None:
            self._started_ns = now_ns
        changes = []
        for health in self.cameras.values():
            last = health.last_received_ns if health.last_received_ns is not None \
                else self._started_ns
            silent = now_ns - last
            # A camera running slower than its model (a reduced-rate bag) is not in outage
            # between two of its frames: wait at least 2.5 of its measured intervals.
            limit = max(self.outage_ns, int(2.5e9 / health.fps) if health.fps > 0 else 0)
            out = silent > limit
            if out != health.in_outage:
                health.in_outage = out
                changes.append(OutageChange(health.camera_id, out, silent * 1e-9))
        return changes
