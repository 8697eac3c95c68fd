"""Weight fusion: batches of shelf load-cell samples -> shelf events (pure).

``ShelfFusion.update`` checks a batch against the store layout (unknown shelf, bins that
do not match, wrong array size, NaN-only, out of order, from the future: a
``FusionInputError`` with a ``reason``), watches each cell for being stuck at one value
(``dead_cells``, ``notices``), runs each bin's ``BinSignal`` over the valid samples and
turns every settled change into a ``ShelfEvent`` with SKU x quantity candidates from the
bin's contents (``BinContents``), which learn misplaced returns. docs/shelf-to-cart.md.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Sequence

import numpy as np

from .candidates import BinContents, SkuCandidate
from .config import FusionConfig, ShelfLayout
from .segmenter import BinSignal, NS_PER_S, WeightChange

PICK = 'pick'
RETURN = 'return'
UNKNOWN = 'unknown'


class FusionInputError(ValueError):
    """A batch that cannot be used; ``reason`` is a short counter name."""

    def __init__(self, reason: str, message: str) -> None:
        """Keep the reason (e.g. 'unknown_shelf') beside the message."""
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class LoadCellSamples:
    """One batch of one shelf: ``grams[sample][column]`` (g), NaN = sample lost.

    ``first_stamp_ns`` is the time of sample 0; sample i is at
    ``first_stamp_ns + i * sample_period_ns``; column j belongs to ``bin_ids[j]``.
    """

    shelf_id: str
    bin_ids: tuple[str, ...]
    first_stamp_ns: int
    sample_period_ns: int
    grams: np.ndarray

    @property
    def last_stamp_ns(self) -> int:
        """Time of the last sample."""
        return self.first_stamp_ns + (len(self.grams) - 1) * self.sample_period_ns


def samples_from_flat(shelf_id: str, bin_ids: Sequence[str], first_stamp_ns: int,
                      sample_period_ns: int, sample_count: int,
                      flat_grams: Sequence[float]) -> LoadCellSamples:
    """Build a batch from a row-major flat array (as LoadCellBatch carries it).

    Raises FusionInputError('wrong_length') when the array is not samples x bins.
    """
    bins = tuple(bin_ids)
    values = np.asarray(flat_grams, dtype=float)
    if sample_count < 1 or not bins or values.size != sample_count * len(bins):
        raise FusionInputError(
            'wrong_length', f'shelf {shelf_id!r}: {values.size} values for {sample_count} '
            f'samples x {len(bins)} bins')
    return LoadCellSamples(shelf_id, bins, int(first_stamp_ns), int(sample_period_ns),
                           values.reshape(sample_count, len(bins)))


@dataclass(frozen=True)
class ShelfEvent:
    """A settled weight change of one bin and what may have moved.

    ``event_type``: 'pick' (weight went down), 'return' (up) or 'unknown' (no catalog
    explanation is likely); ``delta_grams`` after minus before; ``start_ns`` the weight
    began to change, ``end_ns`` it settled (the event's stamp); ``candidates`` most
    likely first, likelihoods summing to <= 1.
    """

    event_id: str
    shelf_id: str
    bin_id: str
    event_type: str
    delta_grams: float
    start_ns: int
    end_ns: int
    candidates: tuple[SkuCandidate, ...]

    @property
    def stamp_ns(self) -> int:
        """The settle time."""
        return self.end_ns


@dataclass(frozen=True)
class CellNotice:
    """A load cell went dead (stuck at one value) or came back."""

    shelf_id: str
    bin_id: str
    kind: str            # 'dead' or 'alive'
    stamp_ns: int
    value_g: float


class _Cell:
    """One bin's cell: stuck-value watch, signal and contents."""

    def __init__(self, shelf_id: str, bin_id: str, signal: BinSignal,
                 contents: BinContents) -> None:
        self.shelf_id = shelf_id
        self.bin_id = bin_id
        self.signal = signal
        self.contents = contents
        self.last_raw = math.nan
        self.same_since_ns = 0
        self.dead = False


class ShelfFusion:
    """Every shelf of a store: feed batches in time order per shelf, get shelf events."""

    def __init__(self, config: FusionConfig, layout: ShelfLayout) -> None:
        """One signal and one contents estimate per bin of the layout."""
        self.config = config
        self.layout = layout
        self._cells: dict[str, _Cell] = {}
        for shelf_id, bin_ids in layout.shelves.items():
            for bin_id in bin_ids:
                contents = BinContents(tuple(layout.planogram.get(bin_id, ())),
                                       layout.catalog, config)
                self._cells[bin_id] = _Cell(shelf_id, bin_id,
                                            BinSignal(config, contents.fits), contents)
        self._next_stamp_ns: dict[str, int] = {}
        self._dead_ns = int(round(config.dead_cell_s * NS_PER_S))
        self._future_ns = int(round(config.max_future_s * NS_PER_S))
        self.counters: dict[str, int] = {}
        self.notices: list[CellNotice] = []
        self.adopted: list[tuple[str, str]] = []   # (bin, SKU) learnt at the last update

    def count(self, key: str, increment: int = 1) -> None:
        """Add to a counter (also for drops found before a batch reached the core)."""
        self.counters[key] = self.counters.get(key, 0) + increment

    def contents(self, bin_id: str) -> BinContents:
        """Return what a bin is believed to hold (KeyError if unknown)."""
        return self._cells[bin_id].contents

    def dead_cells(self) -> list[str]:
        """Bins whose cell is stuck at one value now."""
        return sorted(b for b, cell in self._cells.items() if cell.dead)

    def check(self, samples: LoadCellSamples, now_ns: int | None = None) -> None:
        """Raise FusionInputError if the batch cannot be used; nothing is changed."""
        shelf_bins = self.layout.shelves.get(samples.shelf_id)
        if shelf_bins is None:
            raise FusionInputError('unknown_shelf', f'unknown shelf {samples.shelf_id!r}')
        if len(set(samples.bin_ids)) != len(samples.bin_ids) \
                or set(samples.bin_ids) != set(shelf_bins):
            raise FusionInputError(
                'bin_mismatch', f'shelf {samples.shelf_id!r}: bins {list(samples.bin_ids)} '
                f'do not match the store description {list(shelf_bins)}')
        grams = samples.grams
        if grams.ndim != 2 or grams.shape[0] < 1 or grams.shape[1] != len(samples.bin_ids):
            raise FusionInputError(
                'wrong_length', f'shelf {samples.shelf_id!r}: grams of shape {grams.shape} '
                f'for {len(samples.bin_ids)} bins')
        if samples.sample_period_ns <= 0:
            raise FusionInputError('bad_period', f'shelf {samples.shelf_id!r}: sample '
                                   f'period {samples.sample_period_ns} ns')
        if not np.isfinite(grams).any():
            raise FusionInputError('all_nan', f'shelf {samples.shelf_id!r}: every sample '
                                   'of the batch is lost (NaN)')
        if now_ns is not None and samples.last_stamp_ns > now_ns + self._future_ns:
            raise FusionInputError(
                'future_stamp', f'shelf {samples.shelf_id!r}: last sample '
                f'{(samples.last_stamp_ns - now_ns) / NS_PER_S:.3f} s ahead of the clock')
        expected = self._next_stamp_ns.get(samples.shelf_id)
        if expected is not None and \
                samples.first_stamp_ns < expected - samples.sample_period_ns // 2:
            raise FusionInputError(
                'out_of_order', f'shelf {samples.shelf_id!r}: batch starts '
                f'{(expected - samples.first_stamp_ns) / NS_PER_S:.3f} s before the end '
                'of the previous one')

    def update(self, samples: LoadCellSamples, now_ns: int | None = None) -> list[ShelfEvent]:
        """Check and use one batch; return the events that settled in it, oldest first."""
        self.notices = []
        self.adopted = []
        try:
            self.check(samples, now_ns)
        except FusionInputError as error:
            self.count(f'dropped_{error.reason}')
            raise
        self.count('batches')
        expected = self._next_stamp_ns.get(samples.shelf_id)
        period = samples.sample_period_ns
        if expected is not None and samples.first_stamp_ns > expected + period // 2:
            self.count('samples_missing', (samples.first_stamp_ns - expected + period // 2)
                        // period)
        self._next_stamp_ns[samples.shelf_id] = samples.last_stamp_ns + period
        grams = samples.grams
        finite = np.isfinite(grams)
        self.count('samples_lost', int(grams.size - finite.sum()))
        stamps = [samples.first_stamp_ns + i * period for i in range(grams.shape[0])]
        changes: list[tuple[_Cell, WeightChange]] = []
        for column, bin_id in enumerate(samples.bin_ids):
            cell = self._cells[bin_id]
            values = grams[:, column].tolist()
            for stamp_ns, value, ok in zip(stamps, values, finite[:, column].tolist(),
                                           strict=True):
                if ok and self._alive(cell, stamp_ns, value):
                    for change in cell.signal.add(stamp_ns, value):
                        changes.append((cell, change))
        # Unsettled periods that came back to their level (presses, lifts put back).
        self.counters['touches'] = sum(c.signal.touches for c in self._cells.values())
        changes.sort(key=lambda item: (item[1].end_ns, item[0].bin_id))
        events = [self._event(cell, change) for cell, change in changes]
        self.count('events', len(events))
        return events

    def _alive(self, cell: _Cell, stamp_ns: int, value: float) -> bool:
        """Watch for a cell stuck at one value; False while it is."""
        if value == cell.last_raw:
            if not cell.dead and stamp_ns - cell.same_since_ns >= self._dead_ns:
                cell.dead = True
                cell.signal.reset()
                self.count('dead_cell_detections')
                self.notices.append(CellNotice(cell.shelf_id, cell.bin_id, 'dead', stamp_ns,
                                               value))
            return not cell.dead
        cell.last_raw = value
        cell.same_since_ns = stamp_ns
        if cell.dead:
            # Whatever happened while it was stuck is unknown: learn the level afresh.
            cell.dead = False
            cell.signal.reset()
            self.notices.append(CellNotice(cell.shelf_id, cell.bin_id, 'alive', stamp_ns,
                                           value))
        return True

    def _event(self, cell: _Cell, change: WeightChange) -> ShelfEvent:
        explanation = cell.contents.explain(change.delta_g)
        if explanation.explained < 0.5:
            kind = UNKNOWN
            self.count('events_unknown')
        else:
            kind = PICK if change.delta_g < 0.0 else RETURN
        for sku in cell.contents.apply(change.delta_g, explanation):
            self.adopted.append((cell.bin_id, sku))
            self.count('misplaced_adopted')
        return ShelfEvent(
            event_id=f'{cell.shelf_id}/{cell.bin_id}/{change.end_ns}', shelf_id=cell.shelf_id,
            bin_id=cell.bin_id, event_type=kind, delta_grams=change.delta_g,
            start_ns=change.start_ns, end_ns=change.end_ns,
            candidates=explanation.candidates)
