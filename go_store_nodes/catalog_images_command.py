"""`go-store catalog-images`: reference images of every catalog product, rendered.

An integrator photographs each product before a store opens: one unit on a shelf, from
several distances and angles, under a few lights, cut out from the background. For a
simulated store this command does the same with the simulator's renderer: per SKU it
builds a booth (one shelf with one bin holding that SKU only, no walls) and a ring of
cameras of the store's first camera model round it (distance, elevation, azimuth, roll),
renders each view with one unit and with none, keeps the pixels that change (the unit)
and writes them as RGBA PNGs (alpha = the unit) to ``<out>/<sku>/<view>.png``, the layout
``core.product_id.references`` reads. A light factor (brightness and a small colour cast)
varies per view. Deterministic for a seed.

Sim side: it uses core/sim's renderer, so no node imports it.
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
from typing import Sequence

import numpy as np

from .command_args import add_store_args, store_path
from .core.product_id.crops import changed_mask
from .core.product_id.references import write_reference_image
from .core.store import (
    Bin,
    Camera,
    Gate,
    load_store_description,
    Product,
    Shelf,
    StoreDescription,
)
from .core.transforms import Transform

EXIT_OK = 0
EXIT_BAD_INPUT = 2

DISTANCES_M = (1.5, 2.5, 3.5)
ELEVATIONS_DEG = (25.0, 45.0, 65.0)
AZIMUTHS_DEG = (-35.0, 0.0, 35.0)
MAX_ROLL_DEG = 15.0
LIGHT_GAIN = (0.75, 1.25)        # brightness of the booth light per view
LIGHT_CAST = 0.05                # +- per channel colour cast
MASK_THRESHOLD_DN = 10.0         # unit vs empty bin: the renderer's noise is 2 DN RMS
CROP_MARGIN_PX = 2
STOCKED_BIN_M = (0.5, 0.46)      # width, depth of the shelf-like bin of the stocked views
BOOTH_XY_M = (5.0, 5.0)          # shelf front centre on the booth floor (map)
BIN_FLOOR_M = 0.8                # bin bottom above the floor
STAMP_NS = 1_700_000_000 * 10**9


def _look_at(position: np.ndarray, target: np.ndarray, roll_rad: float) -> Transform:
    """Pose of an optical frame (z to the target, x right, y down) rolled about z."""
    z = target - position
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = math.cos(roll_rad), math.sin(roll_rad)
    x, y = c * x + s * y, -s * x + c * y
    return Transform(np.column_stack([x, y, z]), np.asarray(position, dtype=float))


def _booth(store: StoreDescription, product: Product,
           views: Sequence[tuple[float, float, float, float]],
           stocked: bool = False) -> StoreDescription:
    """Return a store of one shelf, one bin of ``product`` and one camera per view.

    The bin holds one unit (``stocked`` False) or is a shelf-sized bin of many units.
    """
    width, depth, height = product.appearance.size_m
    bin_w, bin_d = width + 0.06, depth + 0.03
    bin_h = max(0.4, height + 0.05)
    if stocked:
        bin_w, bin_d = max(bin_w, STOCKED_BIN_M[0]), max(bin_d, STOCKED_BIN_M[1])
    low = (-bin_w / 2.0, 0.02, BIN_FLOOR_M)
    high = (bin_w / 2.0, 0.02 + bin_d, BIN_FLOOR_M + bin_h)
    shelf_pose = Transform(np.eye(3), np.array([BOOTH_XY_M[0], BOOTH_XY_M[1], 0.0]))
    bin_ = Bin('booth_bin', 'booth', 'booth_lc', low, high, (product.sku,))
    shelf = Shelf('booth', shelf_pose, (bin_w + 0.04, bin_d + 0.04, high[2] + 0.025), (bin_,))
    target = shelf_pose.apply(np.array([[0.0, 0.02 + bin_d - depth / 2.0 - 0.01,
                                         BIN_FLOOR_M + min(height, bin_h) / 2.0]]))[0]
    if stocked:       # the front units, which a shopper takes first
        target = shelf_pose.apply(np.array([[0.0, 0.02 + depth / 2.0,
                                             BIN_FLOOR_M + bin_h / 2.0]]))[0]
    model = store.cameras[0].model
    cameras = []
    for index, (distance, elevation, azimuth, roll) in enumerate(views):
        el, az = math.radians(elevation), math.radians(azimuth)
        position = target + distance * np.array([math.cos(el) * math.sin(az),
                                                 -math.cos(el) * math.cos(az), math.sin(el)])
        t_map_color = _look_at(position, target, math.radians(roll))
        cameras.append(Camera(f'view_{index:02d}', model, '',
                              t_map_color @ model.t_depth_color.inverse()))
    gates = (Gate('entry', 'entry', (0.0, 0.0), (1.0, 1.0)),
             Gate('exit', 'exit', (9.0, 0.0), (10.0, 1.0)))
    return StoreDescription(
        name='booth', map_frame='map', size_m=(10.0, 10.0), currency=store.currency,
        camera_models={model.name: model}, cameras=tuple(cameras), shelves=(shelf,),
        gates=gates, catalog={product.sku: product})


def _views(seed: int, sku: str) -> list[tuple[float, float, float, float]]:
    rng = np.random.default_rng([seed, sum(sku.encode())])
    return [(d, e, a, float(rng.uniform(-MAX_ROLL_DEG, MAX_ROLL_DEG)))
            for d in DISTANCES_M for e in ELEVATIONS_DEG for a in AZIMUTHS_DEG]


def render_product_views(store: StoreDescription, sku: str, seed: int = 0,
                         every: int = 1, stocked: bool = False
                         ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Render the views of one SKU: (RGB crop, item mask) pairs, empty views left out.

    ``stocked`` False: one unit alone in a bin, the mask is the whole unit. True: a full
    shelf-like bin before and after the first unit a shopper takes (front, top) is gone,
    the mask is the pixels that change, as product ID sees a pick. ``every`` > 1 renders
    only every so many views (quicker, for tests).
    """
    from .core.sim.render import Renderer
    from .core.sim.render_scene import bin_slot_count

    product = store.product(sku)
    views = _views(seed + (1000 if stocked else 0), sku)[::every]
    booth = _booth(store, product, views, stocked)
    renderer = Renderer(booth, image_scale=1.0, seed=seed, walls=False)
    rng = np.random.default_rng([seed, 7 + stocked, sum(sku.encode())])
    ids = [c.camera_id for c in booth.cameras]
    bin_ = booth.shelves[0].bins[0]
    full = bin_slot_count(bin_.min_m, bin_.max_m, 1, product.appearance) if stocked else 1
    with_unit = [c for _, c in renderer.render_frames(ids, [], STAMP_NS,
                                                      stock={'booth_bin': {sku: full}})]
    without = [c for _, c in renderer.render_frames(ids, [], STAMP_NS,
                                                    stock={'booth_bin': {sku: full - 1}})]
    found = []
    for full, empty in zip(with_unit, without, strict=True):
        mask = changed_mask(full, empty, MASK_THRESHOLD_DN)
        rows, cols = np.nonzero(mask)
        if rows.size < 4:
            continue
        r0, r1 = max(0, rows.min() - CROP_MARGIN_PX), rows.max() + CROP_MARGIN_PX + 1
        c0, c1 = max(0, cols.min() - CROP_MARGIN_PX), cols.max() + CROP_MARGIN_PX + 1
        light = rng.uniform(*LIGHT_GAIN) * rng.uniform(1 - LIGHT_CAST, 1 + LIGHT_CAST, 3)
        crop = np.clip(full[r0:r1, c0:c1].astype(float) * light, 0, 255).astype(np.uint8)
        found.append((crop, mask[r0:r1, c0:c1]))
    return found


def write_catalog_images(store: StoreDescription, out: pathlib.Path, seed: int = 0,
                         skus: Sequence[str] | None = None,
                         with_stocked: bool = False) -> dict[str, int]:
    """Render and write the reference images of ``skus`` (default: the catalog).

    ``view_NN.png``: one unit alone; ``shelf_NN.png`` (``with_stocked``): the change a
    pick makes in a full bin.
    """
    counts = {}
    for sku in skus if skus is not None else sorted(store.catalog):
        folder = out / sku
        for old in folder.glob('*.png') if folder.is_dir() else ():
            old.unlink()
        views = render_product_views(store, sku, seed)
        for index, (crop, mask) in enumerate(views):
            write_reference_image(folder / f'view_{index:02d}.png', crop, mask)
        stocked = render_product_views(store, sku, seed, stocked=True) if with_stocked else []
        for index, (crop, mask) in enumerate(stocked):
            write_reference_image(folder / f'shelf_{index:02d}.png', crop, mask)
        counts[sku] = len(views) + len(stocked)
    return counts


def cmd_catalog_images(args: argparse.Namespace) -> int:
    """Write the reference images of every catalog SKU."""
    try:
        store = load_store_description(store_path(args))
    except ValueError as error:
        print(f'go-store: {error}', file=sys.stderr)
        return EXIT_BAD_INPUT
    out = pathlib.Path(args.out) if args.out else (
        pathlib.Path(store.product_images) if store.product_images else None)
    if out is None:
        print('go-store: no --out and the store description names no product_images folder',
              file=sys.stderr)
        return EXIT_BAD_INPUT
    skus = args.skus.split(',') if args.skus else None
    unknown = [s for s in skus or () if s not in store.catalog]
    if unknown:
        print(f'go-store: not in the catalog: {", ".join(unknown)}', file=sys.stderr)
        return EXIT_BAD_INPUT
    counts = write_catalog_images(store, out, args.seed, skus, args.shelf_views)
    print(f'wrote {sum(counts.values())} reference images of {len(counts)} SKUs to {out}')
    empty = [s for s, n in counts.items() if n == 0]
    if empty:
        print(f'no view shows: {", ".join(empty)}', file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


def add_subcommand(sub: argparse._SubParsersAction) -> None:
    """Add `catalog-images` to the `go-store` subparsers."""
    parser = sub.add_parser('catalog-images',
                            help='render reference images of every catalog product')
    add_store_args(parser)
    parser.add_argument('--out', default=None,
                        help="folder to write (default: the store's product_images folder)")
    parser.add_argument('--seed', type=int, default=0, help='renderer seed (default 0)')
    parser.add_argument('--skus', default='', help='comma-separated SKUs (default: all)')
    parser.add_argument('--shelf-views', action='store_true',
                        help='also write shelf_NN.png: the change a pick makes in a full bin '
                        '(about 3 times the rendering time)')
    parser.set_defaults(func=cmd_catalog_images)
