"""Bin crops for review evidence: which cameras see a bin's front, and the crop as PNG.

The bin box (shelf frame) is projected through the colour camera's pose in map and its
pinhole intrinsics with product ID's window code (core.product_id.crops), so the page
shows what product ID looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import cv2
import numpy as np

from ..locator import decode_color, FrameRejectedError
from ..product_id.crops import bin_window, sees_bin_front, visible_share
from ..store import Bin, Intrinsics, Shelf
from ..transforms import Transform

MIN_CROP_PX = 4
CROP_HEIGHT_PX = 150   # crops are shown at this height (nearest neighbour)
MAX_CROP_WIDTH_PX = 320


@dataclass(frozen=True)
class BinCrop:
    """One camera's view of a bin before or after a shelf event."""

    camera_id: str
    label: str          # 'before' or 'after'
    stamp_ns: int
    width: int
    height: int
    png: bytes


def pick_cameras(bin_: Bin, t_map_shelf: Transform, t_map_color: Mapping[str, Transform],
                 intrinsics: Mapping[str, Intrinsics], shelves: Sequence[Shelf],
                 count: int) -> list[str]:
    """Return up to ``count`` cameras in front of the bin, the best share of it seen first."""
    shelf = next(s for s in shelves if s.shelf_id == bin_.shelf_id)
    others = [s for s in shelves if s.shelf_id != bin_.shelf_id]
    scored = []
    for camera_id, pose in t_map_color.items():
        model = intrinsics.get(camera_id)
        if model is None or not sees_bin_front(bin_, t_map_shelf, pose):
            continue
        share = visible_share(bin_, shelf, pose, model, others)
        if share > 0.0:
            scored.append((-share, camera_id))
    return [camera_id for _, camera_id in sorted(scored)[:count]]


def crop_bin(camera_id: str, label: str, stamp_ns: int, encoding: str, height: int,
             width: int, step: int, data: bytes, bin_: Bin, t_map_shelf: Transform,
             t_map_color: Transform, intrinsics: Intrinsics, margin_m: float
             ) -> BinCrop | None:
    """Return the PNG crop of the bin in one colour frame; None if it is not in view.

    The intrinsics are scaled to the image when its size differs from camera_info's.
    """
    if (intrinsics.width, intrinsics.height) != (width, height):
        intrinsics = intrinsics.scaled(width / intrinsics.width)
    window = bin_window(bin_, t_map_shelf, t_map_color, intrinsics, margin_m, MIN_CROP_PX)
    if window is None:
        return None
    try:
        rgb = decode_color(encoding, height, width, step, data)
    except FrameRejectedError:
        return None
    col, row, w, h = window
    crop = rgb[row:row + h, col:col + w]
    scale = min(CROP_HEIGHT_PX / crop.shape[0], MAX_CROP_WIDTH_PX / crop.shape[1])
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    shown = cv2.resize(np.ascontiguousarray(crop), size, interpolation=cv2.INTER_NEAREST)
    ok, png = cv2.imencode('.png', np.ascontiguousarray(shown[:, :, ::-1]))
    if not ok:
        return None
    return BinCrop(camera_id, label, stamp_ns, int(shown.shape[1]), int(shown.shape[0]),
                   png.tobytes())
