"""Colour signature of a person's head and shoulders: a unit-norm hue/grey histogram.

Map points of the head-and-shoulder region (from the depth frames) are projected into
the colour images of the cameras that saw them; the sampled pixels vote into
``HUE_BINS`` x ``SATURATION_BINS`` chromatic bins and ``GREY_BINS`` brightness bins for
unsaturated pixels (hair, dark clothes). The square root of the shares, normalised to unit
length, compares by dot product (Bhattacharyya coefficient). Colour only: no faces, no
shapes, nothing that identifies a person beyond the clothes and hair colour of a visit.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from .frames import ColorFrame

HUE_BINS = 8
SATURATION_BINS = 2
GREY_BINS = 4
APPEARANCE_LENGTH = HUE_BINS * SATURATION_BINS + GREY_BINS
GREY_SATURATION = 0.25                # below: counted by brightness only
MIN_PIXELS = 8


def sample_colors(points: NDArray[np.float32], frame: ColorFrame) -> NDArray[np.uint8]:
    """RGB (N, 3) of the colour pixels that map points (N, 3) project to, inside the image."""
    if points.size == 0:
        return np.zeros((0, 3), np.uint8)
    t_color_map = frame.t_map_color.inverse()
    camera = points.astype(np.float64) @ t_color_map.rotation.T + t_color_map.translation
    ahead = camera[:, 2] > 0.05
    camera = camera[ahead]
    k = frame.intrinsics
    if any(k.d):
        pixels, _ = cv2.projectPoints(camera, np.zeros(3), np.zeros(3), k.k(), np.asarray(k.d))
        u, v = pixels[:, 0, 0], pixels[:, 0, 1]
    else:
        u = k.fx * camera[:, 0] / camera[:, 2] + k.cx
        v = k.fy * camera[:, 1] / camera[:, 2] + k.cy
    col, row = np.rint(u).astype(np.int64), np.rint(v).astype(np.int64)
    height, width = frame.rgb.shape[:2]
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    return frame.rgb[row[inside], col[inside]]


def signature(rgb: NDArray[np.uint8]) -> tuple[float, ...]:
    """Unit-norm histogram of RGB samples (N, 3); () when there are too few."""
    if len(rgb) < MIN_PIXELS:
        return ()
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb, np.uint8).reshape(-1, 1, 3),
                       cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3).astype(np.float64)
    hue, saturation, value = hsv[:, 0] / 256.0, hsv[:, 1] / 255.0, hsv[:, 2] / 255.0
    chromatic = saturation >= GREY_SATURATION
    hue_bin = np.minimum((hue * HUE_BINS).astype(np.int64), HUE_BINS - 1)
    sat_bin = np.minimum(((saturation - GREY_SATURATION) / (1.0 - GREY_SATURATION)
                          * SATURATION_BINS).astype(np.int64), SATURATION_BINS - 1)
    grey_bin = np.minimum((value * GREY_BINS).astype(np.int64), GREY_BINS - 1)
    index = np.where(chromatic, hue_bin * SATURATION_BINS + np.maximum(sat_bin, 0),
                     HUE_BINS * SATURATION_BINS + grey_bin)
    counts = np.bincount(index, minlength=APPEARANCE_LENGTH).astype(np.float64)
    root = np.sqrt(counts / counts.sum())
    root /= np.linalg.norm(root)
    return tuple(float(v) for v in root)
