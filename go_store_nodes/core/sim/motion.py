"""The world's step rate and the smooth curves that actions share (docs/simulation.md)."""

from __future__ import annotations

import math

STEP_HZ = 60
DT_S = 1.0 / STEP_HZ


def stamp_of_step(start_ns: int, step: int) -> int:
    """Stamp (ns) of a 60 Hz step, rounded to the nearest nanosecond."""
    return start_ns + (step * 10 ** 9 + STEP_HZ // 2) // STEP_HZ


def _smooth(x: float) -> float:
    """Smoothstep on [0, 1]."""
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def _envelope(fraction: float, rise: float = 0.4, fall: float = 0.6) -> float:
    """0 -> 1 over [0, rise], 1 until ``fall``, back to 0 at 1 (smoothstep edges)."""
    if fraction < rise:
        return _smooth(fraction / rise)
    if fraction <= fall:
        return 1.0
    return _smooth((1.0 - fraction) / (1.0 - fall))


def _wrap(angle: float) -> float:
    """Wrap an angle to (-pi, pi]."""
    return math.atan2(math.sin(angle), math.cos(angle))
