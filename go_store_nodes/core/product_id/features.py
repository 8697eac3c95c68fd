"""Appearance features of an item's pixels, and a local-feature (ORB) matcher.

Colour: chromaticity (r, g) = (R, G) / (R + G + B) does not change when the light gets
brighter or dimmer, so a 2-D chromaticity histogram of the item's pixels describes its
colours under any store light; the share of each colour is what tells flavours of one
brand apart (the flavour cue is a band, lid or face in an accent colour on the common
pack colour). A spatial layout (the same histogram, coarser, for the upper and the lower
half of the item in the image) keeps where the colours are, and a coarse brightness
histogram separates white, grey and black packs that share a neutral chromaticity.
Histograms are square-rooted so that Euclidean distance is the Hellinger distance.

Local features: ORB keypoints with Lowe's ratio test and a RANSAC homography find a
textured reference (a box print) in a scene; useful where crops are large enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

CHROMA_BINS = 10              # per axis of the (r, g) histogram
CHROMA_RANGE = (0.05, 0.75)   # r and g of real colours rarely leave this range
LAYOUT_BINS = 5               # per axis of each half's coarser histogram
LUMA_BINS = 6                 # log2 luma from 8 (DN) to 256
LUMA_LOG2_RANGE = (3.0, 8.0)
# Relative weights of the parts of the feature vector.
CHROMA_WEIGHT = 1.0
LAYOUT_WEIGHT = 0.6
LUMA_WEIGHT = 0.3
MIN_SUM_DN = 12.0             # pixels darker than this (R + G + B) carry no chromaticity
FEATURE_LENGTH = CHROMA_BINS ** 2 + 2 * LAYOUT_BINS ** 2 + LUMA_BINS


def _soft_histogram_2d(u: NDArray[np.float64], v: NDArray[np.float64], bins: int,
                       low: float, high: float,
                       weights: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """Return a bilinear-vote 2-D histogram of points in [low, high]^2.

    A shift of light or print that moves colours across a bin edge so changes the
    histogram smoothly.
    """
    histogram = np.zeros((bins, bins))
    if u.size == 0:
        return histogram.ravel()
    scale = bins / (high - low)
    x = np.clip((u - low) * scale - 0.5, 0.0, bins - 1.0)
    y = np.clip((v - low) * scale - 0.5, 0.0, bins - 1.0)
    x0 = np.minimum(np.floor(x).astype(int), bins - 2) if bins > 1 else np.zeros_like(x, int)
    y0 = np.minimum(np.floor(y).astype(int), bins - 2) if bins > 1 else np.zeros_like(y, int)
    fx, fy = x - x0, y - y0
    w = np.ones_like(u) if weights is None else weights
    for dx, wx in ((0, 1.0 - fx), (1, fx)):
        for dy, wy in ((0, 1.0 - fy), (1, fy)):
            np.add.at(histogram, (x0 + dx, y0 + dy), wx * wy * w)
    return histogram.ravel()


def _normalised_root(histogram: NDArray[np.float64]) -> NDArray[np.float64]:
    total = histogram.sum()
    return np.sqrt(histogram / total) if total > 0 else histogram


def _chroma_cells(pixels: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return the (r, g) chromaticity histogram cell of every pixel of an HxWx3 image."""
    total = np.maximum(pixels.sum(axis=2), 1.0)
    low, high = CHROMA_RANGE
    scale = CHROMA_BINS / (high - low)
    ix = np.clip(((pixels[:, :, 0] / total - low) * scale).astype(int), 0, CHROMA_BINS - 1)
    iy = np.clip(((pixels[:, :, 1] / total - low) * scale).astype(int), 0, CHROMA_BINS - 1)
    return ix, iy


def background_weights(rgb: NDArray[np.uint8], mask: NDArray[np.bool_],
                       strength: float) -> NDArray[np.float64]:
    """Return per-pixel weights (HxW, 0..1) that play down colours of the background.

    The background is the unmasked pixels of the same crop (shelf, other units). A pixel
    whose chromaticity is d times as common there as a uniform spread would make it gets
    exp(-strength x d): changed pixels in the shelf's own colours are mostly edges and
    shading that moved, not the item.
    """
    weights = np.ones(mask.shape)
    background = ~np.asarray(mask, dtype=bool)
    if strength <= 0.0 or not background.any():
        return weights
    pixels = np.asarray(rgb, dtype=np.float64)
    total = np.maximum(pixels.sum(axis=2), 1.0)
    r, g = pixels[:, :, 0] / total, pixels[:, :, 1] / total
    low, high = CHROMA_RANGE
    histogram = _soft_histogram_2d(r[background], g[background], CHROMA_BINS, low, high)
    density = histogram.reshape(CHROMA_BINS, CHROMA_BINS) / histogram.sum() * CHROMA_BINS ** 2
    return np.exp(-strength * density[_chroma_cells(pixels)])


def familiar_colour_weights(rgb: NDArray[np.uint8], known: NDArray[np.uint8],
                            strength: float) -> NDArray[np.float64]:
    """Return per-pixel weights (HxW, 0..1) that play down colours seen in ``known``.

    ``known`` is any array of RGB pixels (..., 3), e.g. a person's torso: a pixel whose
    chromaticity is d times as common there as a uniform spread would make it gets
    exp(-strength x d).
    """
    pixels = np.asarray(rgb, dtype=np.float64)
    weights = np.ones(pixels.shape[:2])
    known_pixels = np.asarray(known, dtype=np.float64).reshape(-1, 3)
    if strength <= 0.0 or len(known_pixels) == 0:
        return weights
    low, high = CHROMA_RANGE
    known_total = np.maximum(known_pixels.sum(axis=1), 1.0)
    histogram = _soft_histogram_2d(known_pixels[:, 0] / known_total,
                                   known_pixels[:, 1] / known_total, CHROMA_BINS, low, high)
    density = histogram.reshape(CHROMA_BINS, CHROMA_BINS) / histogram.sum() * CHROMA_BINS ** 2
    return np.exp(-strength * density[_chroma_cells(pixels)])


def unseen_colour_weights(rgb: NDArray[np.uint8], known: NDArray[np.uint8],
                          known_px: float) -> NDArray[np.float64]:
    """Return per-pixel weights (HxW, 0..1): high for colours not seen in ``known``.

    ``known`` is any array of RGB pixels (..., 3) of the same place without the item (a
    person before a pick). A pixel whose chromaticity cell holds n known pixels (votes
    shared with the neighbouring cells, as in the item feature) gets exp(-n / known_px):
    a colour seen on a few pixels is known however large the rest of the view is, so an
    item carried before and after is played down as much as the shirt and the floor.
    Pixels too dark for a chromaticity get exp(-(known dark pixels) / known_px).
    """
    pixels = np.asarray(rgb, dtype=np.float64)
    known_pixels = np.asarray(known, dtype=np.float64).reshape(-1, 3)
    if len(known_pixels) == 0:
        return np.ones(pixels.shape[:2])
    low, high = CHROMA_RANGE
    known_total = known_pixels.sum(axis=1)
    lit = known_total >= MIN_SUM_DN
    counts = _soft_histogram_2d(known_pixels[lit, 0] / known_total[lit],
                                known_pixels[lit, 1] / known_total[lit], CHROMA_BINS,
                                low, high).reshape(CHROMA_BINS, CHROMA_BINS)
    seen = np.where(pixels.sum(axis=2) >= MIN_SUM_DN, counts[_chroma_cells(pixels)],
                    float(np.sum(~lit)))
    return np.exp(-seen / known_px)


def item_feature(rgb: NDArray[np.uint8], mask: NDArray[np.bool_],
                 weights: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """Return the appearance feature (length FEATURE_LENGTH) of the masked pixels.

    ``rgb`` is HxWx3 uint8 in RGB order, ``mask`` HxW bool (the item's pixels),
    ``weights`` optional HxW votes per pixel (default 1). Raises ValueError when shapes
    disagree or the mask is empty.
    """
    rgb = np.asarray(rgb)
    mask = np.asarray(mask, dtype=bool)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or mask.shape != rgb.shape[:2]:
        raise ValueError(f'need HxWx3 rgb and an HxW mask, got {rgb.shape} and {mask.shape}')
    rows, _ = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError('the mask selects no pixel')
    pixels = rgb[mask].astype(np.float64)
    vote = np.ones(len(pixels)) if weights is None else np.asarray(weights, float)[mask]
    total = pixels.sum(axis=1)
    coloured = total >= MIN_SUM_DN
    r = pixels[coloured, 0] / total[coloured]
    g = pixels[coloured, 1] / total[coloured]
    w = vote[coloured]
    low, high = CHROMA_RANGE
    chroma = _normalised_root(_soft_histogram_2d(r, g, CHROMA_BINS, low, high, w))
    # Upper and lower half of the item in the image (by the median row).
    middle = np.median(rows)
    upper = (rows <= middle)[coloured]
    halves = [_normalised_root(_soft_histogram_2d(r[part], g[part], LAYOUT_BINS, low, high,
                                                  w[part]))
              for part in (upper, ~upper)]
    luma = pixels @ np.array([0.299, 0.587, 0.114])
    log_luma = np.log2(np.maximum(luma, 1.0))
    # Linear votes between bin centres: a dimmer light shifts mass, it does not jump.
    lo, hi = LUMA_LOG2_RANGE
    position = np.clip((log_luma - lo) / (hi - lo) * LUMA_BINS - 0.5, 0.0, LUMA_BINS - 1.0)
    below = np.minimum(np.floor(position).astype(int), LUMA_BINS - 2)
    upper_share = position - below
    luma_votes = np.bincount(below, vote * (1.0 - upper_share), LUMA_BINS) + np.bincount(
        below + 1, vote * upper_share, LUMA_BINS)
    luma_histogram = _normalised_root(np.asarray(luma_votes, dtype=np.float64))
    return np.concatenate([CHROMA_WEIGHT * chroma, LAYOUT_WEIGHT * halves[0],
                           LAYOUT_WEIGHT * halves[1], LUMA_WEIGHT * luma_histogram])


@dataclass(frozen=True)
class LocalFeatures:
    """ORB keypoints (pixel coordinates) and their binary descriptors of one image."""

    points: NDArray[np.float32]        # N x 2, (x, y) px
    descriptors: NDArray[np.uint8]     # N x 32


@dataclass(frozen=True)
class LocalMatch:
    """Matches of a reference in a scene: ratio-test matches, RANSAC inliers, homography."""

    matches: int
    inliers: int
    homography: NDArray[np.float64] | None     # reference px -> scene px


class OrbMatcher:
    """ORB keypoints, brute-force Hamming matching with Lowe's ratio test, RANSAC."""

    def __init__(self, n_features: int = 1000, ratio: float = 0.75,
                 ransac_px: float = 5.0) -> None:
        """Set how many keypoints to find, the ratio test and the RANSAC tolerance (px)."""
        if n_features < 10:
            raise ValueError(f'n_features must be >= 10, got {n_features}')
        if not 0.0 < ratio < 1.0:
            raise ValueError(f'ratio must be in (0, 1), got {ratio}')
        if not ransac_px > 0.0:
            raise ValueError(f'ransac_px must be > 0, got {ransac_px}')
        self._orb = cv2.ORB.create(nfeatures=n_features)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self.ratio = ratio
        self.ransac_px = ransac_px

    def features(self, image: NDArray[np.uint8],
                 mask: NDArray[np.bool_] | None = None) -> LocalFeatures:
        """Return the ORB features of a gray (HxW) or RGB (HxWx3) uint8 image."""
        gray = np.asarray(image, dtype=np.uint8)
        if gray.ndim == 3:
            gray = np.asarray(cv2.cvtColor(gray, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
        cv_mask = None if mask is None else np.asarray(mask, dtype=np.uint8) * 255
        keypoints, descriptors = self._orb.detectAndCompute(gray, cv_mask)
        if descriptors is None or not keypoints:
            return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
        points = np.array([k.pt for k in keypoints], dtype=np.float32)
        return LocalFeatures(points, np.asarray(descriptors, dtype=np.uint8))

    def match(self, reference: LocalFeatures, scene: LocalFeatures) -> LocalMatch:
        """Match a reference's features into a scene's; homography when 4+ agree."""
        if len(reference.descriptors) < 2 or len(scene.descriptors) < 2:
            return LocalMatch(0, 0, None)
        pairs = self._matcher.knnMatch(reference.descriptors, scene.descriptors, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < self.ratio * p[1].distance]
        if len(good) < 4:
            return LocalMatch(len(good), 0, None)
        source = reference.points[[m.queryIdx for m in good]].reshape(-1, 1, 2)
        target = scene.points[[m.trainIdx for m in good]].reshape(-1, 1, 2)
        homography, inlier_mask = cv2.findHomography(source, target, cv2.RANSAC,
                                                     self.ransac_px)
        if homography is None or inlier_mask is None:
            return LocalMatch(len(good), 0, None)
        return LocalMatch(len(good), int(inlier_mask.sum()), np.asarray(homography, float))
