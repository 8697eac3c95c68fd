"""Weight fusion: shelf load-cell samples -> shelf events (pure; docs/shelf-to-cart.md)."""

from .candidates import BinContents, Explanation, SkuCandidate
from .config import FusionConfig, layout_from_store, ShelfLayout, UnitWeight
from .fusion import (
    CellNotice,
    FusionInputError,
    LoadCellSamples,
    PICK,
    RETURN,
    samples_from_flat,
    ShelfEvent,
    ShelfFusion,
    UNKNOWN,
)
from .segmenter import BinSignal, WeightChange

__all__ = ['BinContents', 'BinSignal', 'CellNotice', 'Explanation', 'FusionConfig',
           'FusionInputError', 'layout_from_store', 'LoadCellSamples', 'PICK', 'RETURN',
           'samples_from_flat', 'ShelfEvent', 'ShelfFusion', 'ShelfLayout', 'SkuCandidate',
           'UNKNOWN', 'UnitWeight', 'WeightChange']
