"""Camera timing of the simulated rig: capture phases, clocks, latency, drops and outages.

Each camera captures on its own phase of the world's 60 Hz steps (a whole number of steps
within one frame period; depth and colour of a camera share the capture). Its header
stamp is the capture time as the camera's clock says:
``stamp = capture + offset + drift_ppm * 1e-6 * (capture - start)``, with ``capture`` the
world step's stamp (the true time, the one truth uses). The message arrives ``latency``
later (per camera base latency plus an exponential per-frame jitter, never before the
camera's previous frame): that arrival is the bag's log (receive) time, which replay
uses to order and time playback.

Frame drops follow a two-state Gilbert model per camera: a dropped frame starts a burst
that lasts ``camera_drop_burst_frames`` frames on average, and the long-run drop rate is
``camera_frame_drop``. Outages (the ``camera_outage`` behaviour, per minute over the
store) take one camera away for ``camera_outage_s`` seconds; they are planned up front.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Sequence

import numpy as np

STEP_HZ = 60


@dataclass(frozen=True)
class CameraTimingConfig:
    """Timing and drop options of the cameras (the scenario's ``sensors`` keys)."""

    frame_drop: float = 0.0
    drop_burst_frames: float = 1.0
    clock_offset_ms: float = 0.0
    clock_drift_ppm: float = 0.0
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    capture_phase: bool = False
    outage_rate_per_min: float = 0.0
    outage_s: tuple[float, float] = (3.0, 8.0)

    def __post_init__(self) -> None:
        """Validate the options."""
        if not 0.0 <= self.frame_drop < 1.0:
            raise ValueError(f'frame_drop must be in [0, 1), got {self.frame_drop}')
        if not self.drop_burst_frames >= 1.0:
            raise ValueError(f'drop_burst_frames must be >= 1, got {self.drop_burst_frames}')
        if self.frame_drop > 0.0 and self.frame_drop / (1.0 - self.frame_drop) \
                / self.drop_burst_frames > 1.0:
            raise ValueError('frame_drop too high for drop_burst_frames (the chance to start '
                             'a burst would exceed 1)')
        for name in ('clock_offset_ms', 'clock_drift_ppm', 'latency_ms', 'latency_jitter_ms',
                     'outage_rate_per_min'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'{name} must be >= 0, got {value}')
        low, high = self.outage_s
        if not 0.0 < low <= high:
            raise ValueError(f'outage_s: need 0 < min <= max, got {[low, high]}')


@dataclass(frozen=True)
class CameraClock:
    """One camera's clock and link: offset (ns), drift (ppm), base latency, phase (steps)."""

    camera_id: str
    offset_ns: int
    drift_ppm: float
    latency_ns: int
    phase_steps: int


@dataclass(frozen=True)
class CameraCapture:
    """One camera frame taken at a world step and delivered.

    ``stamp_ns`` is the header stamp (camera clock), ``arrival_ns`` the receive time.
    """

    camera_id: str
    stamp_ns: int
    arrival_ns: int


@dataclass(frozen=True)
class CameraOutage:
    """A camera delivering nothing from ``start_ns`` to ``end_ns`` (true time)."""

    camera_id: str
    start_ns: int
    end_ns: int


class CameraRig:
    """Decides per world step which cameras capture, which frames are lost, the stamps."""

    def __init__(self, camera_ids: Sequence[str], config: CameraTimingConfig, fps: float,
                 start_ns: int, total_steps: int, rng: np.random.Generator) -> None:
        """Draw every camera's clock and plan the outages (all from ``rng``)."""
        self.config = config
        self.fps = fps
        self.start_ns = start_ns
        steps_per_frame = max(1, int(math.floor(STEP_HZ / fps + 1e-9)))
        self.clocks: list[CameraClock] = []
        for camera_id in camera_ids:
            offset = rng.uniform(-1.0, 1.0) * config.clock_offset_ms * 1e6
            drift = rng.uniform(-1.0, 1.0) * config.clock_drift_ppm
            latency = rng.uniform(0.75, 1.25) * config.latency_ms * 1e6
            phase = int(rng.integers(steps_per_frame)) if config.capture_phase else 0
            self.clocks.append(CameraClock(camera_id, int(round(offset)), float(drift),
                                           int(round(latency)), phase))
        self.outages = self._plan_outages(camera_ids, total_steps, rng)
        self._bad = dict.fromkeys(camera_ids, False)
        self._last_arrival = dict.fromkeys(camera_ids, 0)
        self._rng = rng
        self.frames = 0
        self.dropped = 0
        self.lost_to_outages = 0

    def _plan_outages(self, camera_ids: Sequence[str], total_steps: int,
                      rng: np.random.Generator) -> tuple[CameraOutage, ...]:
        rate = self.config.outage_rate_per_min
        if rate <= 0.0 or not camera_ids:
            return ()
        duration_s = total_steps / STEP_HZ
        outages = []
        t_s = float(rng.exponential(60.0 / rate))
        while t_s < duration_s:
            camera_id = camera_ids[int(rng.integers(len(camera_ids)))]
            length_s = float(rng.uniform(*self.config.outage_s))
            start = self.start_ns + int(round(t_s * 1e9))
            outages.append(CameraOutage(camera_id, start, start + int(round(length_s * 1e9))))
            t_s += float(rng.exponential(60.0 / rate))
        return tuple(outages)

    def _captures(self, clock: CameraClock, step: int) -> bool:
        k = step - clock.phase_steps
        if k < 0:
            return False
        return k == 0 or math.floor(k * self.fps / STEP_HZ + 1e-9) != \
            math.floor((k - 1) * self.fps / STEP_HZ + 1e-9)

    def in_outage(self, camera_id: str, stamp_ns: int) -> bool:
        """Return whether a camera is out at a true time."""
        return any(o.camera_id == camera_id and o.start_ns <= stamp_ns < o.end_ns
                   for o in self.outages)

    def step(self, step: int, stamp_ns: int) -> tuple[tuple[CameraCapture, ...],
                                                       frozenset[str]]:
        """Return the captures delivered at a world step and the cameras whose frame is lost.

        Draws from the generator in camera order, so a seed gives the same answer.
        """
        config = self.config
        delivered = []
        lost = []
        burst_end = 1.0 / config.drop_burst_frames
        burst_start = (config.frame_drop / (1.0 - config.frame_drop)) * burst_end
        for clock in self.clocks:
            if not self._captures(clock, step):
                continue
            self.frames += 1
            # Gilbert model: the state decides, and changes after each frame.
            bad = self._bad[clock.camera_id]
            if config.frame_drop > 0.0:
                draw = float(self._rng.random())
                self._bad[clock.camera_id] = draw >= burst_end if bad else draw < burst_start
            jitter = float(self._rng.exponential(1.0)) * config.latency_jitter_ms * 1e6
            if bad:
                self.dropped += 1
                lost.append(clock.camera_id)
                continue
            if self.in_outage(clock.camera_id, stamp_ns):
                self.lost_to_outages += 1
                lost.append(clock.camera_id)
                continue
            elapsed = stamp_ns - self.start_ns
            header = stamp_ns + clock.offset_ns + int(round(clock.drift_ppm * 1e-6 * elapsed))
            arrival = stamp_ns + clock.latency_ns + int(round(jitter))
            arrival = max(arrival, self._last_arrival[clock.camera_id] + 1)
            self._last_arrival[clock.camera_id] = arrival
            delivered.append(CameraCapture(clock.camera_id, header, arrival))
        return tuple(delivered), frozenset(lost)
