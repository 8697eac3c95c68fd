"""The reference image folder: what each catalog SKU looks like, as photographed.

Layout (the store description's ``product_images`` folder)::

    <folder>/<sku>/<any name>.png     RGBA: the item's pixels, alpha > 0 where the item is

One sub-folder per SKU, named by the catalog SKU, with several views (distances, angles,
rotations, light) of one unit against any background, the background transparent. An
integrator photographs each product so (or `go-store catalog-images` renders them for a
simulated store). Problems are returned, not raised, so that one bad entry costs only
itself: a folder whose name is not a catalog SKU, an unreadable image, an empty mask.
"""

from __future__ import annotations

from dataclasses import dataclass
import pathlib
from typing import Iterable

import cv2
import numpy as np
from numpy.typing import NDArray

MIN_ITEM_PX = 4     # references with fewer item pixels are refused (empty_mask)


@dataclass(frozen=True)
class ReferenceImage:
    """One reference view of a SKU: RGB pixels and the item mask."""

    sku: str
    rgb: NDArray[np.uint8]       # HxWx3
    mask: NDArray[np.bool_]      # HxW
    source: str = ''


@dataclass(frozen=True)
class ReferenceProblem:
    """A reference entry that was left out: counter key, what and where."""

    reason: str                  # 'unknown_sku', 'unreadable_image', 'empty_mask', 'no_references'
    message: str


def read_reference_image(path: str | pathlib.Path, sku: str) -> ReferenceImage:
    """Read one RGBA reference PNG; raise ValueError if unreadable or without item pixels."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f'{path}: not a colour image')
    rgb = np.ascontiguousarray(image[:, :, 2::-1], dtype=np.uint8)
    mask = image[:, :, 3] > 0 if image.shape[2] == 4 else np.ones(image.shape[:2], bool)
    if int(mask.sum()) < MIN_ITEM_PX:
        raise ValueError(f'{path}: fewer than {MIN_ITEM_PX} item pixels (alpha > 0)')
    return ReferenceImage(sku, rgb, mask, str(path))


def write_reference_image(path: str | pathlib.Path, rgb: NDArray[np.uint8],
                          mask: NDArray[np.bool_]) -> None:
    """Write RGB pixels and an item mask as an RGBA PNG (alpha 255 on the item)."""
    rgba = np.dstack([np.asarray(rgb)[:, :, ::-1], np.where(mask, 255, 0).astype(np.uint8)])
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), rgba):
        raise OSError(f'cannot write {path}')


def load_reference_folder(folder: str | pathlib.Path, catalog_skus: Iterable[str]
                          ) -> tuple[list[ReferenceImage], list[ReferenceProblem]]:
    """Read every reference of the catalog's SKUs; list what was left out and why.

    Raises FileNotFoundError when ``folder`` is not a directory.
    """
    root = pathlib.Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f'product image folder {root} does not exist')
    known = set(catalog_skus)
    images: list[ReferenceImage] = []
    problems: list[ReferenceProblem] = []
    seen: set[str] = set()
    for sku_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        sku = sku_dir.name
        if sku not in known:
            problems.append(ReferenceProblem(
                'unknown_sku', f'{sku_dir}: {sku!r} is not a SKU of the catalog; left out'))
            continue
        for path in sorted(sku_dir.glob('*.png')):
            try:
                images.append(read_reference_image(path, sku))
                seen.add(sku)
            except ValueError as error:
                reason = 'empty_mask' if 'item pixels' in str(error) else 'unreadable_image'
                problems.append(ReferenceProblem(reason, str(error)))
    for sku in sorted(known - seen):
        problems.append(ReferenceProblem(
            'no_references', f'{root}: no reference image of catalog SKU {sku!r}; it cannot '
            'be recognised'))
    return images, problems
