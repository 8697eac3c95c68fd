"""One bin's load-cell signal -> settled weight changes (pure).

The signal is a plate's absolute load sampled at a steady rate: the settled weight plus
white noise and slow drift, with single-sample spikes, presses of a hand, ringing after a
change and ramps while an item leaves or enters the hand. A change is only believed once
the weight holds a new level for ``settle_s``: the event is the difference between the
level before the first departure and the new settled level. Levels held for
``split_plateau_s`` inside one unsettled period split it into several changes (two hands
at one bin one after the other); changes that cancel (a unit lifted and put back) are
merged first, so a touch that returns to the same plateau makes no event.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Deque, Optional

from .config import FusionConfig

NS_PER_S = 1_000_000_000
# Settled samples kept for the level before a change: more than level_s at 60 Hz.
_HISTORY_SAMPLES = 512


@dataclass(frozen=True)
class WeightChange:
    """A settled change of one bin's weight.

    ``start_ns``: the weight began to change (first sample away from the level before);
    ``end_ns``: the new level was reached (first sample of the settled plateau);
    ``delta_g`` = ``after_g`` - ``before_g`` (g, plate load).
    """

    start_ns: int
    end_ns: int
    delta_g: float
    before_g: float
    after_g: float


class _Plateau:
    """Samples within a narrow band of their running mean."""

    __slots__ = ('start_ns', 'last_ns', 'total', 'samples')

    def __init__(self, samples: list[tuple[int, float]]) -> None:
        self.start_ns = samples[0][0]
        self.last_ns = samples[-1][0]
        self.total = sum(v for _, v in samples)
        self.samples = list(samples)

    @property
    def mean(self) -> float:
        return self.total / len(self.samples)

    def flat(self, tolerance_g: float) -> bool:
        """Whether the thirds' means lie on one level: no slope, no bulge (a press's top)."""
        n = len(self.samples) // 3
        if n < 1:
            return False
        values = [v for _, v in self.samples]
        first = sum(values[:n]) / n
        middle = sum(values[n:len(values) - n]) / (len(values) - 2 * n)
        last = sum(values[-n:]) / n
        return abs(last - first) <= tolerance_g \
            and abs(middle - (first + last) / 2.0) <= tolerance_g

    def add(self, stamp_ns: int, value: float) -> None:
        self.samples.append((stamp_ns, value))
        self.total += value
        self.last_ns = stamp_ns


@dataclass
class _Part:
    """A piece of an unsettled period between two levels."""

    start_ns: int
    end_ns: int
    before_g: float
    after_g: float

    @property
    def delta_g(self) -> float:
        return self.after_g - self.before_g


class BinSignal:
    """Streaming segmentation of one load cell: feed samples, get settled changes."""

    def __init__(self, config: FusionConfig,
                 fits: Optional[Callable[[float], bool]] = None) -> None:
        """Start without a level: the first still window sets it (no event).

        ``fits(delta_g)`` tells whether a change is a plausible event of this bin on its
        own (e.g. whole units of a SKU it holds); a period is only split into parts that
        all fit. None: every part fits.
        """
        self.config = config
        self._fits = fits
        self._settle_ns = int(round(config.settle_s * NS_PER_S))
        self._split_ns = int(round(config.split_plateau_s * NS_PER_S))
        self._level_ns = int(round(config.level_s * NS_PER_S))
        self._hold_g = config.stable_band_g / 2.0 + config.hold_margin_g
        self.touches = 0          # unsettled periods that came back to their level
        self.reset()

    def reset(self) -> None:
        """Forget the level (after a dead cell came back): the next still window sets it."""
        self._median: Deque[tuple[int, float]] = deque(maxlen=self.config.median_samples)
        self._window: Deque[tuple[int, float]] = deque(
            maxlen=self.config.stable_window_samples)
        self._history: Deque[tuple[int, float]] = deque(maxlen=_HISTORY_SAMPLES)
        self.level_g: float | None = None
        self._last_ns = 0
        self.moving = False
        self._moving_start_ns = 0
        self._before_g = 0.0
        self._plateaus: list[_Plateau] = []
        self._candidate: _Plateau | None = None

    @property
    def moving_since_ns(self) -> Optional[int]:
        """Stamp of the first sample away from the settled level while unsettled; else None."""
        return self._moving_start_ns if self.moving else None

    def add(self, stamp_ns: int, grams: float) -> list[WeightChange]:
        """Add one valid sample (finite grams, increasing stamps); return settled changes."""
        median = self._median
        median.append((stamp_ns, grams))
        if len(median) < median.maxlen:  # type: ignore[operator]
            return []
        middle = len(median) // 2
        value = sorted(v for _, v in median)[middle]
        return self._filtered(median[middle][0], value)

    # -- the filtered stream ------------------------------------------------------------

    def _still(self) -> bool:
        window = self._window
        if len(window) < window.maxlen:  # type: ignore[operator]
            return False
        values = [v for _, v in window]
        return max(values) - min(values) <= self.config.stable_band_g

    def _filtered(self, stamp_ns: int, value: float) -> list[WeightChange]:
        self._window.append((stamp_ns, value))
        if self.level_g is None:
            if self._still():
                self._settled_on(list(self._window))
            self._last_ns = stamp_ns
            return []
        if not self.moving:
            self._settled_sample(stamp_ns, value)
            self._last_ns = stamp_ns
            return []
        self._last_ns = stamp_ns
        return self._moving_sample(stamp_ns, value)

    def _settled_on(self, samples: list[tuple[int, float]]) -> None:
        self.level_g = sum(v for _, v in samples) / len(samples)
        self._history.clear()
        self._history.extend(samples)
        self.moving = False

    def _settled_sample(self, stamp_ns: int, value: float) -> None:
        assert self.level_g is not None
        if abs(value - self.level_g) > self.config.depart_g:
            self._depart(stamp_ns)
            self._window.clear()
            self._window.append((stamp_ns, value))
            return
        dt_s = max(0, stamp_ns - self._last_ns) / NS_PER_S
        self.level_g += min(1.0, dt_s / self.config.level_tau_s) * (value - self.level_g)
        self._history.append((stamp_ns, value))

    def _depart(self, stamp_ns: int) -> None:
        """Leave the settled level: remember the level before from the settled samples."""
        history = list(self._history)
        guard = self.config.level_guard_samples
        if len(history) > guard + 2:
            history = history[:len(history) - guard]
        recent = [v for t, v in history if t >= history[-1][0] - self._level_ns]
        self._before_g = sum(recent) / len(recent) if recent else float(self.level_g or 0.0)
        self._moving_start_ns = stamp_ns
        self._plateaus = []
        self._candidate = None
        self.moving = True

    def _moving_sample(self, stamp_ns: int, value: float) -> list[WeightChange]:
        candidate = self._candidate
        if candidate is not None:
            if abs(value - candidate.mean) <= self._hold_g:
                candidate.add(stamp_ns, value)
                if stamp_ns - candidate.start_ns >= self._settle_ns:
                    return self._settle(candidate)
                return []
            if candidate.last_ns - candidate.start_ns >= self._split_ns \
                    and candidate.flat(self.config.split_flatness_g):
                self._plateaus.append(candidate)
            self._candidate = None
        if self._still():
            candidate = _Plateau(list(self._window))
            if all(abs(v - candidate.mean) <= self._hold_g for _, v in candidate.samples):
                self._candidate = candidate
                if stamp_ns - candidate.start_ns >= self._settle_ns:
                    return self._settle(candidate)
        return []

    def _settle(self, plateau: _Plateau) -> list[WeightChange]:
        """Settle on a new level: the changes since the departure, split and merged."""
        levels = [p.mean for p in self._plateaus] + [plateau.mean]
        parts: list[_Part] = []
        before, start = self._before_g, self._moving_start_ns
        for level, held in zip(levels, [*self._plateaus, plateau], strict=True):
            parts.append(_Part(start, held.start_ns, before, level))
            before, start = level, held.last_ns
        merged = _merge(parts, self.config.min_event_g, self._fits)
        self._settled_on(plateau.samples)
        self._plateaus = []
        self._candidate = None
        changes = [WeightChange(p.start_ns, p.end_ns, p.delta_g, p.before_g, p.after_g)
                   for p in merged if abs(p.delta_g) >= self.config.min_event_g]
        if not changes:
            self.touches += 1
        return changes


def _merge(parts: list[_Part], min_event_g: float,
           fits: Optional[Callable[[float], bool]] = None) -> list[_Part]:
    """Merge parts that cancel (lift and put back), parts too small and parts that do not fit.

    Adjacent parts whose sum is below ``min_event_g`` are one touch; a part below it, or
    one that ``fits`` refuses (a level that was a press and a ramp cancelling), is joined
    to its next neighbour (or the previous one at the end).
    """
    parts = list(parts)

    def join(i: int, j: int) -> None:
        first, second = parts[i], parts[j]
        parts[i] = _Part(first.start_ns, second.end_ns, first.before_g, second.after_g)
        del parts[j]

    changed = True
    while changed and len(parts) > 1:
        changed = False
        for i in range(len(parts) - 1):
            if abs(parts[i].delta_g + parts[i + 1].delta_g) < min_event_g:
                join(i, i + 1)
                changed = True
                break
        if changed:
            continue
        for i, part in enumerate(parts):
            if abs(part.delta_g) < min_event_g or (fits is not None
                                                   and not fits(part.delta_g)):
                if i + 1 < len(parts):
                    join(i, i + 1)
                else:
                    join(i - 1, i)
                changed = True
                break
    return parts
