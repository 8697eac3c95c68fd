"""Load-cell signal model: one cell under each bin, sampled at 60 Hz, read in batches of 12.

Figures from the AiFi Nanostore (CPS-IoT 2020 autonomous checkout contest): plates read
at 60 Hz and delivered in batches of 12, up to 20 kg per plate; the absolute weight
drifts but changes are reliable. The model adds to the true weight (tare + stock):

* weight changes that ramp over 0.2-0.8 s (drawn per change) as an item leaves or enters
  the hand, not a step;
* a pressing transient while a hand touches the bin (a half-sine of a few hundred grams
  over 0.3-1 s) and a short damped ringing after each weight change, so a decision must
  use the settled change, not the first sample after a touch;
* touches that take nothing: a press, or a unit lifted and put straight back (a dip of
  one unit's weight and its recovery);
* white noise, a slow drift (a random walk plus a slope, both scaled in g/min) and
  occasional spikes of one or two samples.

Units of one SKU are not identical: ``draw_unit_weights`` gives each physical unit its
own weight within the catalog tolerance, and the world moves those exact weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Sequence

import numpy as np
from numpy.typing import NDArray

SAMPLE_RATE_HZ = 60.0
BATCH_SIZE = 12
SAMPLE_PERIOD_NS = int(round(1e9 / SAMPLE_RATE_HZ))
CAPACITY_G = 20_000.0


@dataclass(frozen=True)
class LoadCellBatchData:
    """One batch of one shelf: samples x bins of grams, oldest sample first."""

    shelf_id: str
    bin_ids: tuple[str, ...]
    first_stamp_ns: int
    period_ns: int
    grams: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class WeightChange:
    """One scheduled change of a bin's true weight: ``delta_g`` spread over ``steps`` samples.

    The weight follows a raised-cosine ramp from sample ``start_step`` and has all of
    ``delta_g`` from sample ``start_step + steps - 1`` on (``steps`` 1 = a step).
    """

    bin_id: str
    start_step: int
    steps: int
    delta_g: float


def draw_unit_weights(rng: np.random.Generator, unit_weight_g: float, tolerance_g: float,
                      count: int) -> list[float]:
    """Weights (g) of ``count`` physical units of one SKU.

    Normal around the catalog weight with a standard deviation of half the catalog
    tolerance, clipped to the tolerance: about 95 % of units fall inside it unclipped,
    as a packer's tolerance is usually stated.
    """
    if count < 0:
        raise ValueError(f'count: must be >= 0, got {count}')
    if not 0.0 <= tolerance_g < unit_weight_g:
        raise ValueError(f'tolerance_g: need 0 <= tolerance < unit weight, got '
                         f'{tolerance_g} for {unit_weight_g}')
    if count == 0:
        return []
    spread = rng.normal(0.0, tolerance_g / 2.0, count) if tolerance_g > 0.0 else \
        np.zeros(count)
    return [float(unit_weight_g + d) for d in np.clip(spread, -tolerance_g, tolerance_g)]


@dataclass(frozen=True)
class LoadCellConfig:
    """Signal model parameters (grams, seconds, per minute)."""

    noise_g: float = 1.0
    drift_g_per_min: float = 0.0
    spike_rate_per_min: float = 0.0
    press_g: tuple[float, float] = (100.0, 400.0)
    ringing_fraction: float = 0.08
    ringing_hz: float = 6.0
    ringing_tau_s: float = 0.12
    spike_g: tuple[float, float] = (300.0, 3000.0)
    ramp_s: tuple[float, float] = (0.2, 0.8)
    batch_size: int = BATCH_SIZE
    capacity_g: float = CAPACITY_G

    def __post_init__(self) -> None:
        """Validate the config."""
        for name in ('noise_g', 'drift_g_per_min', 'spike_rate_per_min', 'ringing_fraction',
                     'ringing_hz', 'ringing_tau_s'):
            if getattr(self, name) < 0.0:
                raise ValueError(f'{name}: must be >= 0, got {getattr(self, name)}')
        for name in ('press_g', 'spike_g', 'ramp_s'):
            low, high = getattr(self, name)
            if not 0.0 <= low <= high:
                raise ValueError(f'{name}: need 0 <= min <= max, got {[low, high]}')
        if self.batch_size < 1:
            raise ValueError(f'batch_size: must be >= 1, got {self.batch_size}')
        if self.capacity_g <= 0.0:
            raise ValueError(f'capacity_g: must be > 0, got {self.capacity_g}')


@dataclass
class _Transient:
    """An additive signal on one bin over a range of samples."""

    index: int
    start_step: int
    steps: int
    amplitude_g: float
    kind: str          # 'press' (half-sine) or 'ring' (damped oscillation)


@dataclass
class _Ramp:
    """A weight change in progress on one bin."""

    index: int
    start_step: int
    steps: int
    delta_g: float
    applied_g: float = 0.0


class LoadCellArray:
    """Every load cell of the store, stepped at 60 Hz by the world.

    The world schedules weight changes (``change``, ramped), hand presses (``press``) and
    lifts that put the unit back (``lift``) at sample steps; ``history`` keeps every
    scheduled change; ``sample`` draws one sample of every cell and returns the batches
    that completed. Shelves start their batches at staggered steps so batches of
    different shelves do not all arrive at once.
    """

    def __init__(self, shelves: Sequence[tuple[str, Sequence[str]]],
                 true_weights_g: dict[str, float], config: LoadCellConfig,
                 rng: np.random.Generator) -> None:
        """Set up the cells; ``true_weights_g`` holds tare + stock of every bin."""
        self.config = config
        self._rng = rng
        self._shelves = [(shelf_id, tuple(bin_ids)) for shelf_id, bin_ids in shelves]
        self.bin_ids = [b for _, bins in self._shelves for b in bins]
        self._index = {b: i for i, b in enumerate(self.bin_ids)}
        missing = [b for b in self.bin_ids if b not in true_weights_g]
        if missing:
            raise ValueError(f'true_weights_g: no weight for bins {missing}')
        n = len(self.bin_ids)
        self.true_g = np.array([true_weights_g[b] for b in self.bin_ids], dtype=float)
        self._drift = np.zeros(n)
        per_sample = config.drift_g_per_min / math.sqrt(60.0 * SAMPLE_RATE_HZ)
        self._drift_step = per_sample
        self._drift_slope = rng.uniform(-1.0, 1.0, n) * config.drift_g_per_min / (
            60.0 * SAMPLE_RATE_HZ)
        self._changes: dict[int, list[tuple[int, int, float]]] = {}
        self._ramps: list[_Ramp] = []
        self.history: list[WeightChange] = []
        self._transients: list[_Transient] = []
        self._spike_left = np.zeros(n, dtype=int)
        self._spike_value = np.zeros(n)
        self.spike_count = 0
        self._slices: list[slice] = []
        start = 0
        for _, bins in self._shelves:
            self._slices.append(slice(start, start + len(bins)))
            start += len(bins)
        size = config.batch_size
        self._offsets = [(3 * i) % size for i in range(len(self._shelves))]
        self._buffers = [np.zeros((size, len(bins)), dtype=np.float32)
                         for _, bins in self._shelves]
        self._filled = [0] * len(self._shelves)
        self._first_stamp = [0] * len(self._shelves)

    def index(self, bin_id: str) -> int:
        """Column of a bin in the internal arrays."""
        return self._index[bin_id]

    def ramp_steps(self, limit_steps: int) -> int:
        """Draw how many samples a weight change takes (``ramp_s``), at most ``limit_steps``.

        The item leaves (or enters) the hand over this time as it is lifted off or set
        down; the world fits the ramp inside the hand's contact with the bin.
        """
        low, high = self.config.ramp_s
        steps = int(round(float(self._rng.uniform(low, high)) * SAMPLE_RATE_HZ))
        return max(1, min(steps, limit_steps))

    def change(self, bin_id: str, step: int, delta_g: float, ramp_steps: int = 1) -> None:
        """Change the true weight of a bin over ``ramp_steps`` samples from ``step`` on.

        The plate rings a little once the change is complete.
        """
        if ramp_steps < 1:
            raise ValueError(f'ramp_steps: must be >= 1, got {ramp_steps}')
        index = self._index[bin_id]
        self.history.append(WeightChange(bin_id, step, ramp_steps, float(delta_g)))
        self._changes.setdefault(step, []).append((index, ramp_steps, float(delta_g)))
        ring = self.config.ringing_fraction * float(delta_g)
        if ring != 0.0:
            steps = int(round(5.0 * self.config.ringing_tau_s * SAMPLE_RATE_HZ))
            self._transients.append(_Transient(index, step + ramp_steps - 1, max(1, steps),
                                               ring, 'ring'))

    def lift(self, bin_id: str, start_step: int, steps: int, unit_g: float
             ) -> tuple[int, int]:
        """Grasp a unit of ``unit_g``, lift it off a bin and put it straight back.

        The contact runs over samples [``start_step``, ``start_step + steps``); the lift
        starts after a tenth of it and the unit is back before its last twentieth, each
        way a drawn ramp of at most 40 % of the contact. The hand presses while it grasps
        (until the lift is half done) and as it sets the unit down (from half way down),
        not while it holds the unit off the plate, so the dip shows. Return the samples
        (off, back) between which the unit is wholly in the hand. The settled weight is
        unchanged.
        """
        if steps < 8:
            raise ValueError(f'steps: a lift needs a contact of >= 8 samples, got {steps}')
        up = self.ramp_steps(int(0.4 * steps))
        down = self.ramp_steps(int(0.4 * steps))
        lift_at = start_step + max(1, steps // 10)
        back_at = start_step + steps - max(1, steps // 20) - down
        self.press(bin_id, start_step, lift_at + up // 2 - start_step)
        set_down = back_at + down // 2
        self.press(bin_id, set_down, start_step + steps - set_down)
        self.change(bin_id, lift_at, -unit_g, up)
        self.change(bin_id, back_at, unit_g, down)
        return lift_at + up, back_at

    def press(self, bin_id: str, start_step: int, steps: int) -> float:
        """Add a pressing transient of random amplitude; return the amplitude (g)."""
        amplitude = float(self._rng.uniform(*self.config.press_g))
        self._transients.append(
            _Transient(self._index[bin_id], start_step, max(1, steps), amplitude, 'press'))
        return amplitude

    def _transient_g(self, step: int) -> NDArray:
        """Sum of the active transients at a step, per bin."""
        total = np.zeros(len(self.bin_ids))
        keep = []
        for transient in self._transients:
            k = step - transient.start_step
            if k >= transient.steps:
                continue
            keep.append(transient)
            if k < 0:
                continue
            if transient.kind == 'press':
                value = transient.amplitude_g * math.sin(math.pi * (k + 0.5) / transient.steps)
            else:
                t_s = k / SAMPLE_RATE_HZ
                value = transient.amplitude_g * math.exp(-t_s / self.config.ringing_tau_s) \
                    * math.cos(2.0 * math.pi * self.config.ringing_hz * t_s)
            total[transient.index] += value
        self._transients = keep
        return total

    def _advance_ramps(self, step: int) -> None:
        """Move the true weights along their ramps to sample ``step``."""
        keep = []
        for ramp in self._ramps:
            fraction = min(1.0, (step - ramp.start_step + 1) / ramp.steps)
            # Raised cosine: the weight goes slowly as the grip takes it, then faster.
            now = ramp.delta_g if fraction >= 1.0 else \
                ramp.delta_g * 0.5 * (1.0 - math.cos(math.pi * fraction))
            self.true_g[ramp.index] += now - ramp.applied_g
            ramp.applied_g = now
            if fraction < 1.0:
                keep.append(ramp)
        self._ramps = keep

    def sample(self, step: int, stamp_ns: int) -> list[LoadCellBatchData]:
        """Draw the samples of ``step`` for every cell; return the batches completed."""
        for index, steps, delta in self._changes.pop(step, ()):
            self._ramps.append(_Ramp(index, step, steps, delta))
        if self._ramps:
            self._advance_ramps(step)
        config = self.config
        n = len(self.bin_ids)
        if config.drift_g_per_min > 0.0:
            self._drift += self._drift_slope + self._rng.normal(0.0, self._drift_step, n)
        value = self.true_g + self._drift
        if self._transients:
            value = value + self._transient_g(step)
        if config.noise_g > 0.0:
            value = value + self._rng.normal(0.0, config.noise_g, n)
        if config.spike_rate_per_min > 0.0:
            starts = self._rng.random(n) < config.spike_rate_per_min / (60.0 * SAMPLE_RATE_HZ)
            for index in (int(i) for i in np.flatnonzero(starts & (self._spike_left == 0))):
                sign = 1.0 if self._rng.random() < 0.5 else -1.0
                self._spike_value[index] = sign * self._rng.uniform(*config.spike_g)
                self._spike_left[index] = int(self._rng.integers(1, 3))
                self.spike_count += 1
            active = self._spike_left > 0
            if active.any():
                value = value + np.where(active, self._spike_value, 0.0)
                self._spike_left[active] -= 1
        value = np.clip(value, -config.capacity_g, config.capacity_g)
        completed = []
        size = config.batch_size
        for shelf_index, (shelf_id, bins) in enumerate(self._shelves):
            if step < self._offsets[shelf_index]:
                continue
            filled = self._filled[shelf_index]
            if filled == 0:
                self._first_stamp[shelf_index] = stamp_ns
            self._buffers[shelf_index][filled] = value[self._slices[shelf_index]]
            filled += 1
            if filled == size:
                completed.append(LoadCellBatchData(
                    shelf_id, bins, self._first_stamp[shelf_index], SAMPLE_PERIOD_NS,
                    self._buffers[shelf_index].copy()))
                filled = 0
            self._filled[shelf_index] = filled
        return completed
