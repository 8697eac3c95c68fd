"""Configuration and store layout of weight fusion (pure, validated on construction)."""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Mapping

from ..store import StoreDescription


@dataclass(frozen=True)
class FusionConfig:
    """Every tuning value of weight fusion; defaults suit 60 Hz cells of a few g RMS noise.

    Segmentation of each bin's signal (docs/shelf-to-cart.md, Weight fusion):
      median_samples: odd length of the running median over valid samples; it removes
        spikes of up to (median_samples - 1) / 2 samples.
      stable_window_samples: samples whose spread decides whether the weight is still.
      stable_band_g: g, largest max - min spread of a still window (about 5 x the white
        noise RMS of a cell); a new plateau keeps every sample within half of it (plus
        ``hold_margin_g``) of its running mean.
      hold_margin_g: g added to half the band for the samples that extend a plateau.
      depart_g: g from the settled level at which a change (or a touch) begins.
      settle_s: s a new level must hold before it counts as settled; longer than a unit
        is usually held off the plate by a hand that puts it straight back.
      split_plateau_s: s an intermediate level must hold inside one unsettled period to
        split it into separate events (two hands at one bin one after the other).
      split_flatness_g: g, such a level's first, middle and last thirds must agree within
        this (the top of a slow press is not a level).
      split_fit_sigmas: and every part of a split must be whole units of a SKU the bin
        holds within this many standard deviations (else it is joined to a neighbour).
      level_s: s of settled samples averaged for the level before a change.
      level_guard_samples: settled samples just before a departure left out of that level
        (the press of an arriving hand starts within them).
      level_tau_s: s, time constant of the settled level following slow drift.
      min_event_g: g, smaller settled changes are touches, drift or noise, not events.
      dead_cell_s: s of bit-identical raw samples after which a cell is reported dead (a
        live cell always shows noise); its samples are ignored until it changes again.
    Candidates (docs/shelf-to-cart.md):
      max_quantity: most units one event may explain.
      quantity_decay: prior of q units of a SKU the bin holds relative to q - 1
        (geometric; restocks bring several).
      foreign_quantity_decay: the same for SKUs the bin is not known to hold (misplaced
        items come singly).
      tolerance_sigmas: a catalog weight_tolerance_g spans this many standard deviations
        of a unit's weight.
      measurement_std_g: g, std of a settled change (noise, drift, ringing left over).
      foreign_pick_prior: prior that a pick is of a SKU not known to be in the bin.
      foreign_return_prior: prior that a return is of a SKU not known to be in the bin
        (items put back on the wrong shelf).
      misplaced_unit_prior: prior weight of one misplaced unit in a bin's contents,
        relative to one planogram SKU of that bin.
      unexplained_prior: prior that a change has no catalog explanation.
      unexplained_range_g: g, the unexplained changes are spread evenly over this range.
      adopt_min_likelihood: a return is adopted into a bin's contents when SKUs outside
        them explain it with at least this total likelihood.
      min_likelihood: candidates below this likelihood are left out of an event.
      max_candidates: most candidates one event lists.
    Input checks:
      max_future_s: s a batch's last sample may lie ahead of the node clock.
    """

    median_samples: int = 5
    stable_window_samples: int = 12
    stable_band_g: float = 10.0
    hold_margin_g: float = 1.0
    depart_g: float = 8.0
    settle_s: float = 1.2
    split_plateau_s: float = 0.3
    split_flatness_g: float = 3.0
    split_fit_sigmas: float = 3.0
    level_s: float = 0.5
    level_guard_samples: int = 3
    level_tau_s: float = 2.0
    min_event_g: float = 20.0
    dead_cell_s: float = 5.0
    max_quantity: int = 8
    quantity_decay: float = 0.5
    foreign_quantity_decay: float = 0.2
    tolerance_sigmas: float = 2.0
    measurement_std_g: float = 1.5
    foreign_pick_prior: float = 0.01
    foreign_return_prior: float = 0.3
    misplaced_unit_prior: float = 0.5
    unexplained_prior: float = 0.01
    unexplained_range_g: float = 5000.0
    adopt_min_likelihood: float = 0.5
    min_likelihood: float = 0.001
    max_candidates: int = 10
    max_future_s: float = 1.0

    def __post_init__(self) -> None:
        """Validate every field; raise ValueError naming the first bad one."""
        for name, value in vars(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f'FusionConfig.{name}: must be a finite number, got {value!r}')
        if self.median_samples < 1 or self.median_samples % 2 == 0:
            raise ValueError(f'FusionConfig.median_samples: must be odd and >= 1, got '
                             f'{self.median_samples}')
        positive = ('stable_band_g', 'split_fit_sigmas', 'depart_g', 'settle_s', 'level_s',
                    'level_tau_s', 'min_event_g', 'dead_cell_s', 'quantity_decay',
                    'foreign_quantity_decay',
                    'tolerance_sigmas', 'measurement_std_g', 'unexplained_range_g', 'max_future_s',
                    'misplaced_unit_prior')
        for name in positive:
            if getattr(self, name) <= 0.0:
                raise ValueError(f'FusionConfig.{name}: must be > 0, got {getattr(self, name)}')
        for name in ('hold_margin_g', 'split_plateau_s', 'split_flatness_g'):
            if getattr(self, name) < 0.0:
                raise ValueError(f'FusionConfig.{name}: must be >= 0, got {getattr(self, name)}')
        for name in ('stable_window_samples', 'max_quantity', 'max_candidates'):
            if getattr(self, name) < 1 or getattr(self, name) != int(getattr(self, name)):
                raise ValueError(f'FusionConfig.{name}: must be an integer >= 1, got '
                                 f'{getattr(self, name)}')
        if self.level_guard_samples < 0:
            raise ValueError(f'FusionConfig.level_guard_samples: must be >= 0, got '
                             f'{self.level_guard_samples}')
        for name in ('foreign_pick_prior', 'foreign_return_prior', 'unexplained_prior',
                     'adopt_min_likelihood', 'min_likelihood'):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f'FusionConfig.{name}: must be in [0, 1), got '
                                 f'{getattr(self, name)}')
        if self.split_plateau_s > self.settle_s:
            raise ValueError(f'FusionConfig.split_plateau_s: must be <= settle_s '
                             f'({self.settle_s}), got {self.split_plateau_s}')
        if self.depart_g > self.min_event_g:
            raise ValueError(f'FusionConfig.depart_g: must be <= min_event_g '
                             f'({self.min_event_g}), got {self.depart_g}')


@dataclass(frozen=True)
class UnitWeight:
    """Catalog weight of one unit of a SKU: nominal and packing tolerance (g)."""

    unit_weight_g: float
    tolerance_g: float

    def __post_init__(self) -> None:
        """Validate: a positive weight and a tolerance below it."""
        if not (math.isfinite(self.unit_weight_g) and self.unit_weight_g > 0.0):
            raise ValueError(f'unit_weight_g: must be > 0, got {self.unit_weight_g}')
        if not (math.isfinite(self.tolerance_g) and 0.0 <= self.tolerance_g
                < self.unit_weight_g):
            raise ValueError(f'tolerance_g: need 0 <= tolerance < unit weight, got '
                             f'{self.tolerance_g} for {self.unit_weight_g}')


@dataclass(frozen=True)
class ShelfLayout:
    """What fusion needs of a store: shelves and their bins, planogram and catalog weights.

    ``shelves``: shelf id -> bin ids (any order; a batch names its column order).
    ``planogram``: bin id -> SKUs the store put there.
    ``catalog``: SKU -> unit weight. A planogram SKU missing from the catalog cannot be
    weighed: it is listed in ``unweighable`` and left out of the candidates.
    """

    shelves: Mapping[str, tuple[str, ...]]
    planogram: Mapping[str, tuple[str, ...]]
    catalog: Mapping[str, UnitWeight]
    unweighable: tuple[tuple[str, str], ...] = field(default=(), init=False)

    def __post_init__(self) -> None:
        """Validate: unique bins, a planogram entry per bin; list unweighable SKUs."""
        seen: dict[str, str] = {}
        for shelf_id, bin_ids in self.shelves.items():
            if not bin_ids:
                raise ValueError(f'shelf {shelf_id!r}: has no bins')
            for bin_id in bin_ids:
                if bin_id in seen:
                    raise ValueError(f'bin {bin_id!r}: on shelves {seen[bin_id]!r} and '
                                     f'{shelf_id!r}')
                seen[bin_id] = shelf_id
        unknown = sorted(set(self.planogram) - set(seen))
        if unknown:
            raise ValueError(f'planogram: bins on no shelf: {", ".join(unknown)}')
        missing = [(bin_id, sku) for bin_id in seen for sku in self.planogram.get(bin_id, ())
                   if sku not in self.catalog]
        object.__setattr__(self, 'unweighable', tuple(missing))

    def shelf_of(self, bin_id: str) -> str:
        """Shelf id of a bin (KeyError if unknown)."""
        for shelf_id, bin_ids in self.shelves.items():
            if bin_id in bin_ids:
                return shelf_id
        raise KeyError(f'unknown bin {bin_id!r}')


def layout_from_store(description: StoreDescription) -> ShelfLayout:
    """Shelves, planogram and catalog weights of a store description."""
    return ShelfLayout(
        shelves={s.shelf_id: tuple(b.bin_id for b in s.bins) for s in description.shelves},
        planogram={b.bin_id: b.skus for s in description.shelves for b in s.bins},
        catalog={p.sku: UnitWeight(p.unit_weight_g, p.weight_tolerance_g)
                 for p in description.catalog.values()})
