"""Camera renderer: depth (D435-like noise and holes) and colour images of the simulated store.

Every pixel of both streams of a camera is ray-cast against the scene, exactly (a z-buffer
per pixel): the floor, walls, open shelves with their products (drawn once per camera and
cached; a bin whose stock changed is redrawn alone, over its own pixel rectangle), people
as capsules and spheres, the items they hold as solids of their packaging's shape, and
floor targets for calibration. The depth stream lives in the camera's depth optical frame
(``t_map_depth``, depth intrinsics), the colour stream in its colour optical frame
(``t_map_color``, colour intrinsics); both are scaled by ``image_scale``.

Depth realism, after Intel's published D435 figures: depth is Z along the optical axis in
millimetres with 0 for no data; the RMS error grows as ``Z^2 * subpixel / (f_px * baseline)``
(baseline 50 mm, ``f_px`` the depth focal length at the rendered scale) with a slightly
spatially correlated noise field; holes where the right imager cannot see what the left
(reference) imager sees (the occlusion shadow left of near objects and the band at the
left image edge), on the far side of depth jumps, on a fraction of very dark surfaces and
outside the model's depth range. Noise is deterministic for (seed, camera, stamp_ns).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import math
from typing import Any, Mapping, Optional, Sequence
import zlib

import cv2
import numpy as np
from numpy.typing import NDArray

from ..store import Camera, Intrinsics, StoreDescription
from ..transforms import Transform
from .render_geometry import (
    box_rects,
    capsule_batch,
    capsule_normals,
    capsule_rects,
    intersect_capsules,
    intersect_plane,
    intersect_solids,
    make_ray_grid,
    RayGrid,
    rect_pixels,
    sphere_rects,
)
from .render_scene import (
    bin_units,
    body_capsules,
    box_surface_rgb,
    Boxes,
    capsule_surface_rgb,
    Capsules,
    floor_rgb,
    held_item_solid,
    shade,
    store_boxes,
)

FloatArray = NDArray[np.float64]

D435_BASELINE_M = 0.050
BOARD_THICKNESS_M = 0.002
BOARD_BLACK_RGB = 28.0
BOARD_WHITE_RGB = 232.0
MISS_RGB = (70.0, 70.0, 72.0)         # rays that hit nothing (looking over the walls)
BOARD_SUPERSAMPLING = 3               # n x n colour samples per pixel on targets


@dataclass(frozen=True)
class RenderConfig:
    """Options of the renderer; the first three are the simulation's render settings."""

    image_scale: float = 1.0
    seed: int = 0
    depth_noise_subpixel: float = 0.08
    baseline_m: float = D435_BASELINE_M
    noise_blur_sigma_px: float = 1.0      # spatial correlation of the depth noise
    edge_jump_m: float = 0.1              # a depth jump this large invalidates its far side
    edge_hole_px: int = 1                 # ... over this many pixels
    dark_luma: float = 30.0               # surfaces darker than this (0..255) lose depth ...
    dark_hole_fraction: float = 0.4       # ... at this fraction of their pixels
    color_noise_dn: float = 2.0           # colour sensor noise RMS per channel (0..255)
    walls: bool = True

    def __post_init__(self) -> None:
        """Validate the options."""
        if not (math.isfinite(self.image_scale) and 0.0 < self.image_scale <= 4.0):
            raise ValueError(f'image_scale must be in (0, 4], got {self.image_scale}')
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f'seed must be a non-negative integer, got {self.seed!r}')
        for name in ('depth_noise_subpixel', 'noise_blur_sigma_px', 'color_noise_dn'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'{name} must be >= 0, got {value}')
        for name in ('baseline_m', 'edge_jump_m'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'{name} must be > 0, got {value}')
        if self.edge_hole_px < 0:
            raise ValueError(f'edge_hole_px must be >= 0, got {self.edge_hole_px}')
        if not 0.0 <= self.dark_luma <= 255.0:
            raise ValueError(f'dark_luma must be in [0, 255], got {self.dark_luma}')
        if not 0.0 <= self.dark_hole_fraction <= 1.0:
            raise ValueError(
                f'dark_hole_fraction must be in [0, 1], got {self.dark_hole_fraction}')


@dataclass(frozen=True)
class FloorTarget:
    """A printed chessboard lying on the floor, for calibration.

    ``cols`` x ``rows`` inner corners, squares of ``square_m`` and a white margin one square
    wide. ``t_map_board`` is the pose of the printed face, with the convention of
    ``core/calibration/targets.py``: origin at inner corner 0, x along the columns, y along
    the rows (corner i at ``((i % cols) * square_m, (i // cols) * square_m, 0)``), and the
    square diagonally outside corner 0 black. ``on_floor`` lays the board face up with its
    face ``BOARD_THICKNESS_M`` above the floor.
    """

    cols: int
    rows: int
    square_m: float
    t_map_board: Transform

    def __post_init__(self) -> None:
        """Validate the board."""
        if self.cols < 2 or self.rows < 2:
            raise ValueError(f'a chessboard needs >= 2x2 inner corners, got '
                             f'{self.cols}x{self.rows}')
        if not (math.isfinite(self.square_m) and 0.0 < self.square_m <= 2.0):
            raise ValueError(f'square_m must be in (0, 2] metres, got {self.square_m}')
        if not isinstance(self.t_map_board, Transform):
            raise ValueError('t_map_board must be a Transform')

    @classmethod
    def on_floor(cls, cols: int, rows: int, square_m: float, x_m: float, y_m: float,
                 yaw_deg: float = 0.0, z_m: float = BOARD_THICKNESS_M) -> FloorTarget:
        """Lay a board face up: corner 0 at (x_m, y_m, z_m), board x ``yaw_deg`` from map x.

        Board y then points at ``yaw_deg - 90`` and board z down into the floor, as
        ``BoardPlacement.on_floor`` does.
        """
        yaw = math.radians(yaw_deg)
        c, s = math.cos(yaw), math.sin(yaw)
        rotation = np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])
        return cls(cols, rows, square_m, Transform(rotation, np.array([x_m, y_m, z_m])))

    def object_points(self) -> FloatArray:
        """Return the inner corners (cols * rows, 3) in the board frame, row by row."""
        index = np.arange(self.cols * self.rows)
        points = np.zeros((len(index), 3))
        points[:, 0] = (index % self.cols) * self.square_m
        points[:, 1] = (index // self.cols) * self.square_m
        return points

    def extent_m(self) -> tuple[float, float, float, float]:
        """Return the board outline (x0, x1, y0, y1) in the board frame, margin included."""
        s = self.square_m
        return -2.0 * s, (self.cols + 1) * s, -2.0 * s, (self.rows + 1) * s

    def albedo(self, x: FloatArray, y: FloatArray) -> FloatArray:
        """Return the grey level (0..255) of board-frame points; NaN outside the board."""
        x0, x1, y0, y1 = self.extent_m()
        a = np.floor(x / self.square_m)
        b = np.floor(y / self.square_m)
        squares = (a >= -1) & (a <= self.cols - 1) & (b >= -1) & (b <= self.rows - 1)
        black = squares & (np.mod(a + b, 2.0) == 0.0)
        value = np.where(black, BOARD_BLACK_RGB, BOARD_WHITE_RGB)
        inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        return np.where(inside, value, np.nan)


def scale_intrinsics(intrinsics: Intrinsics, scale: float) -> Intrinsics:
    """Scale intrinsics with an image resized by ``scale`` (see ``Intrinsics.scaled``)."""
    return intrinsics.scaled(scale)


COLOUR_EXPOSURE_S = 0.012    # colour exposure under store lighting (motion blur length)
BLUR_HISTORY_S = 0.2         # a held item's velocity from a frame at most this old
BLUR_SAMPLES = 5             # positions averaged over the exposure (odd: one mid-exposure)
MIN_SMEAR_M = 0.002          # less travel than this is drawn sharp
WINDOW_CACHE_SIZE = 16   # backgrounds of colour windows kept (least recently used go)
BIN_MARGIN_M = 0.02      # a bin's pixel rectangle covers its volume grown by this much

BinCounts = tuple[int, ...]                # units per SKU of a bin, in the bin's SKU order


@dataclass(eq=False)
class _Stream:
    """One image stream of a camera: its rays and the cached static background."""

    grid: RayGrid
    z: FloatArray                          # (H * W,) optical depth, inf = nothing
    rgb: NDArray[np.float32]               # (H * W, 3) shaded colour
    base_z: FloatArray                     # the same without any product
    base_rgb: NDArray[np.float32]
    bin_rects: dict[str, tuple[int, int, int, int]]     # col0, col1, row0, row1 (excl.)
    drawn: dict[str, BinCounts | None]     # the stock each bin is drawn with


@dataclass(frozen=True, eq=False)
class _Bin:
    """A bin as the renderer draws it: frame, corners and products."""

    bin_id: str
    t_map_shelf: Transform
    low: tuple[float, ...]
    high: tuple[float, ...]
    products: tuple[Any, ...]


@dataclass(eq=False)
class _View:
    """Both streams of one camera."""

    camera: Camera
    depth: _Stream
    color: _Stream
    key: int


@dataclass(eq=False)
class _Dynamic:
    """The moving part of the scene at one instant (shared by all cameras)."""

    key: tuple[Any, ...]
    bodies: tuple[Any, ...]
    capsules: Capsules
    boxes: Boxes
    smear: FloatArray | None = None     # (K, 3) held items' travel during the exposure (m)


class Renderer:
    """Render depth and colour images of the store's cameras (pure numpy ray casting)."""

    def __init__(self, store: StoreDescription, image_scale: float = 1.0, seed: int = 0,
                 depth_noise_subpixel: float = 0.08, **options: Any) -> None:
        """Prepare a renderer; ``options`` are further ``RenderConfig`` fields."""
        self.store = store
        self.config = RenderConfig(image_scale=image_scale, seed=seed,
                                   depth_noise_subpixel=depth_noise_subpixel, **options)
        self._boxes = Boxes.of(store_boxes(store, walls=self.config.walls, products=False))
        self._bins = {b.bin_id: _Bin(b.bin_id, shelf.t_map_shelf, tuple(b.min_m),
                                     tuple(b.max_m), tuple(store.catalog[k] for k in b.skus))
                      for shelf in store.shelves for b in shelf.bins}
        # None: no stock given yet, every slot full.
        self._stock: dict[str, BinCounts | None] = {b: None for b in self._bins}
        self._bin_boxes: dict[str, Boxes] = {}
        self._views: dict[str, _View] = {}
        self._windows: dict[tuple[str, int, int, int, int], _Stream] = {}
        self._dynamic: _Dynamic | None = None
        # Held items of the last frame drawn: (person, index, SKU) -> (stamp_ns, centre).
        self._held_before: dict[tuple[Any, int, str], tuple[int, FloatArray]] = {}
        self._held_stamp_ns: int | None = None
        self.bin_redraws = 0        # bins redrawn in some stream since construction

    def set_stock(self, stock: Mapping[str, Mapping[str, int]]) -> None:
        """Set the units per SKU in bins (bin id -> SKU -> count); bins left out keep theirs.

        Only the bins whose counts changed are redrawn, at the next render of each camera.
        """
        for bin_id, by_sku in stock.items():
            spec = self._bins.get(bin_id)
            if spec is None:
                raise ValueError(f'stock names an unknown bin {bin_id!r}')
            counts = tuple(int(by_sku.get(p.sku, 0)) for p in spec.products)
            if counts != self._stock[bin_id]:
                self._stock[bin_id] = counts
                self._bin_boxes.pop(bin_id, None)

    def _units(self, bin_id: str) -> Boxes:
        boxes = self._bin_boxes.get(bin_id)
        if boxes is None:
            spec = self._bins[bin_id]
            boxes = Boxes.of(bin_units(spec.t_map_shelf, spec.low, spec.high, spec.products,
                                       self._stock[bin_id], self.config.seed, bin_id))
            self._bin_boxes[bin_id] = boxes
        return boxes

    def intrinsics(self, camera_id: str) -> tuple[Intrinsics, Intrinsics]:
        """Return the (depth, colour) intrinsics of a camera at the rendered scale."""
        model = self.store.camera(camera_id).model
        scale = self.config.image_scale
        return scale_intrinsics(model.depth, scale), scale_intrinsics(model.color, scale)

    def render(self, camera_id: str, bodies: Sequence[Any], stamp_ns: int,
               extra: Sequence[FloorTarget] = (),
               stock: Optional[Mapping[str, Mapping[str, int]]] = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Render (depth uint16 HxW mm, colour uint8 HxWx3 rgb) of one camera.

        ``bodies`` are ``BodyState``s (person_id, joints, shirt/trousers/skin colours, held
        items); ``extra`` holds floor targets; ``stock`` (bin id -> SKU -> units), when
        given, is passed to ``set_stock`` first. Bins never given a stock are full.
        """
        for target in extra:
            if not isinstance(target, FloorTarget):
                raise ValueError(f'extra may only hold FloorTarget, got {type(target).__name__}')
        if stock is not None:
            self.set_stock(stock)
        view = self._view(camera_id)
        self._refresh_bins(view.depth)
        self._refresh_bins(view.color)
        dynamic = self._dynamic_scene(bodies, stamp_ns)
        z_depth, rgb_depth = self._compose(view.depth, dynamic, extra)
        z_color, rgb_color = self._compose(view.color, dynamic, extra, blur=True)
        entropy = [self.config.seed, view.key, int(stamp_ns) % (1 << 64)]
        rng = np.random.default_rng(np.random.SeedSequence(entropy))
        depth = self._depth_image(view, z_depth, rgb_depth, rng)
        colour = self._colour_image(view.color.grid, rgb_color, rng)
        return depth, colour

    def render_colour_window(self, camera_id: str, bodies: Sequence[Any], stamp_ns: int,
                             window: tuple[int, int, int, int]) -> np.ndarray:
        """Render only the colour pixels in ``window`` (col0, row0, width, height), rgb8.

        The rays are those of the same pixels of ``render`` (the scene, shelves with the
        current stock, people and held items are the same; the sensor noise is drawn for
        the window). For crops round a hand, at a fraction of a full frame's cost; the
        backgrounds of the last few windows are kept.
        """
        col0, row0, width, height = (int(v) for v in window)
        if width <= 0 or height <= 0:
            raise ValueError(f'window must have a positive size, got {window}')
        key = (camera_id, col0, row0, width, height)
        stream = self._windows.pop(key, None)
        if stream is None:
            camera = self.store.camera(camera_id)
            k = replace(self.intrinsics(camera_id)[1], width=width, height=height)
            k = replace(k, cx=k.cx - col0, cy=k.cy - row0)
            stream = self._background(make_ray_grid(k, camera.t_map_color))
        else:
            self._refresh_bins(stream)
        self._windows[key] = stream
        while len(self._windows) > WINDOW_CACHE_SIZE:
            self._windows.pop(next(iter(self._windows)))
        _, rgb = self._compose(stream, self._dynamic_scene(bodies, stamp_ns), (), blur=True)
        entropy = [self.config.seed, zlib.crc32(camera_id.encode()), int(stamp_ns) % (1 << 64),
                   col0 % (1 << 32), row0 % (1 << 32)]
        rng = np.random.default_rng(np.random.SeedSequence(entropy))
        return self._colour_image(stream.grid, rgb, rng)

    # Scene set-up ------------------------------------------------------------------------

    def _view(self, camera_id: str) -> _View:
        view = self._views.get(camera_id)
        if view is None:
            camera = self.store.camera(camera_id)
            depth_k, color_k = self.intrinsics(camera_id)
            view = _View(camera, self._background(make_ray_grid(depth_k, camera.t_map_depth)),
                         self._background(make_ray_grid(color_k, camera.t_map_color)),
                         zlib.crc32(camera_id.encode()))
            self._views[camera_id] = view
        return view

    def _background(self, grid: RayGrid) -> _Stream:
        """Render the static store (floor, walls, shelves) for one stream; products follow."""
        n = grid.pixel_count
        t = intersect_plane(grid.origin, grid.directions, np.zeros(3), np.array([0.0, 0.0, 1.0]))
        z = t * grid.z_per_t
        rgb = np.empty((n, 3))
        rgb[:] = MISS_RGB
        floor = np.isfinite(t)
        points = grid.origin + grid.directions[floor] * t[floor, None]
        up = np.broadcast_to(np.array([0.0, 0.0, 1.0]), points.shape)
        rgb[floor] = shade(floor_rgb(points, self.store.size_m), up)
        _draw_boxes(grid, self._boxes, z, rgb)
        rects = {}
        for bin_id, spec in self._bins.items():
            lo = np.asarray(spec.low) - BIN_MARGIN_M
            hi = np.asarray(spec.high) + BIN_MARGIN_M
            rect = box_rects(grid, spec.t_map_shelf.apply((lo + hi) / 2.0)[None, :],
                             np.asarray(spec.t_map_shelf.rotation, dtype=np.float64)[None],
                             ((hi - lo) / 2.0)[None, :])[0]
            rects[bin_id] = (int(rect[0]), int(rect[1]), int(rect[2]), int(rect[3]))
        base_rgb = rgb.astype(np.float32)
        stream = _Stream(grid, z.copy(), base_rgb.copy(), z, base_rgb, rects,
                         {b: None for b in self._bins})
        # Every bin at once: nothing drawn yet, so no region needs clearing.
        everything = Boxes.concatenate([self._units(b) for b in self._bins])
        _draw_boxes(grid, everything, stream.z, stream.rgb)
        stream.drawn = {b: self._stock[b] for b in self._bins}
        return stream

    def _refresh_bins(self, stream: _Stream) -> None:
        """Redraw the bins whose stock changed since this stream last drew them.

        A changed bin's pixel rectangle goes back to the product-free background, then the
        units of every bin whose rectangle overlaps it are drawn clipped to it.
        """
        changed = [b for b, counts in stream.drawn.items() if counts != self._stock[b]]
        for bin_id in changed:
            stream.drawn[bin_id] = self._stock[bin_id]
            c0, c1, r0, r1 = stream.bin_rects[bin_id]
            if c1 <= c0 or r1 <= r0:
                continue
            self.bin_redraws += 1
            _, pix = rect_pixels(np.array([[c0, c1, r0, r1]]), stream.grid.width)
            stream.z[pix] = stream.base_z[pix]
            stream.rgb[pix] = stream.base_rgb[pix]
            near = [b for b, (d0, d1, e0, e1) in stream.bin_rects.items()
                    if d0 < c1 and c0 < d1 and e0 < r1 and r0 < e1]
            _draw_boxes(stream.grid, Boxes.concatenate([self._units(b) for b in near]),
                        stream.z, stream.rgb, clip=(c0, c1, r0, r1))

    def _dynamic_scene(self, bodies: Sequence[Any], stamp_ns: int) -> _Dynamic:
        """Build capsules and held-item solids of everyone, reused by the cameras of a tick.

        How far an item in a hand travels during the colour exposure comes from where it
        was in the frame drawn before (at most ``BLUR_HISTORY_S`` earlier): frames rendered
        in time order, as a recording does, get the same blur for a seed; a frame alone
        gets none. Items in the basket are drawn sharp.
        """
        bodies = tuple(bodies)
        stamp_ns = int(stamp_ns)
        key = (stamp_ns,) + tuple(id(b) for b in bodies)
        if self._dynamic is not None and self._dynamic.key == key:
            return self._dynamic
        capsules = Capsules.concatenate([body_capsules(b) for b in bodies])
        solids, keys, in_hand_flags = [], [], []
        for b in bodies:
            for index, item in enumerate(b.held):
                in_hand_flags.append(item.hand != 'basket')
                solids.append(held_item_solid(self.store.product(item.sku).appearance, b,
                                              index, self.config.seed, stamp_ns))
                keys.append((b.person_id, index, item.sku))
        boxes = Boxes.of(solids)
        smear = np.zeros((len(solids), 3))
        for k, (item_key, solid) in enumerate(zip(keys, solids, strict=True)):
            before = self._held_before.get(item_key)
            recent = before is not None and 0 < stamp_ns - before[0] <= BLUR_HISTORY_S * 1e9
            if in_hand_flags[k] and before is not None and recent:
                speed = (solid.center - before[1]) / ((stamp_ns - before[0]) * 1e-9)
                smear[k] = speed * COLOUR_EXPOSURE_S
        if self._held_stamp_ns is None or stamp_ns > self._held_stamp_ns:
            self._held_before = {item_key: (stamp_ns, solid.center)
                                 for item_key, solid in zip(keys, solids, strict=True)}
            self._held_stamp_ns = stamp_ns
        moving = np.linalg.norm(smear, axis=1).max(initial=0.0) > MIN_SMEAR_M
        self._dynamic = _Dynamic(key, bodies, capsules, boxes, smear if moving else None)
        return self._dynamic

    def _compose(self, stream: _Stream, dynamic: _Dynamic, targets: Sequence[FloorTarget],
                 blur: bool = False) -> tuple[FloatArray, FloatArray]:
        """Draw targets, people and held items over the background, nearest surface wins.

        With ``blur`` (the colour stream), items in a moving hand are drawn at
        ``BLUR_SAMPLES`` points of their travel during the exposure and averaged: a mild
        motion blur. Depth keeps the mid-exposure position.
        """
        z = stream.z.copy()
        rgb = stream.rgb.astype(np.float64)
        for target in targets:
            _draw_target(stream.grid, target, z, rgb)
        _draw_capsules(stream.grid, dynamic.capsules, z, rgb)
        if not blur or dynamic.smear is None:
            _draw_boxes(stream.grid, dynamic.boxes, z, rgb)
            return z, rgb
        # Only the pixels the items can reach change: keep what is under them there.
        grid = stream.grid
        samples = [replace(dynamic.boxes, center=dynamic.boxes.center + f * dynamic.smear)
                   for f in np.linspace(-0.5, 0.5, BLUR_SAMPLES)]
        reach = np.unique(np.concatenate([
            rect_pixels(box_rects(grid, b.center, b.rotation, b.half), grid.width)[1]
            for b in samples]))
        z_under, rgb_under = z[reach], rgb[reach]
        total = np.zeros_like(rgb_under)
        z_mid = z_under
        for index, shifted in enumerate(samples):
            z[reach], rgb[reach] = z_under, rgb_under
            _draw_boxes(grid, shifted, z, rgb)
            total += rgb[reach]
            if 2 * index == BLUR_SAMPLES - 1:
                z_mid = z[reach]
        z[reach], rgb[reach] = z_mid, total / BLUR_SAMPLES
        return z, rgb

    # Sensor models -----------------------------------------------------------------------

    def _depth_image(self, view: _View, z_flat: FloatArray, rgb_flat: FloatArray,
                     rng: np.random.Generator) -> np.ndarray:
        """Turn true optical depth into a D435-like uint16 depth image (mm, 0 = no data)."""
        cfg = self.config
        grid = view.depth.grid
        h, w = grid.height, grid.width
        z = z_flat.reshape(h, w)
        finite = np.isfinite(z)
        near, far = view.camera.model.depth_range_m
        valid = finite & (z >= near) & (z <= far)
        # Stereo occlusion: the right imager (+baseline along x) sees pixel u at
        # u - disparity; a pixel is hidden when a nearer pixel to its right lands on or
        # left of it there, and the band at the left edge falls outside the right image.
        disparity = np.zeros_like(z)
        disparity[finite] = grid.fx * cfg.baseline_m / np.maximum(z[finite], 1e-6)
        u_right = np.arange(w, dtype=np.float64)[None, :] - disparity
        right_min = np.minimum.accumulate(u_right[:, ::-1], axis=1)[:, ::-1]
        shadow = np.zeros((h, w), dtype=bool)
        shadow[:, :-1] = right_min[:, 1:] <= u_right[:, :-1] + 0.5
        shadow |= u_right < -0.5
        # Matching fails next to a jump: the far side of it loses a few pixels.
        z_jump = np.where(finite, z, 1e6)
        step = z_jump[:, 1:] - z_jump[:, :-1]
        edge = np.zeros((h, w), dtype=bool)
        for k in range(cfg.edge_hole_px):
            edge[:, : w - 1 - k] |= step[:, k:] < -cfg.edge_jump_m     # far pixel on the left
            edge[:, 1 + k:] |= step[:, : w - 1 - k] > cfg.edge_jump_m  # far pixel on the right
        # Noise: a blurred, renormalised white field scaled by the D435 RMS model.
        white = rng.standard_normal((h, w), dtype=np.float32)
        sigma = cfg.noise_blur_sigma_px
        noise: NDArray[np.float32] = white
        if sigma > 0.0:
            kernel = cv2.getGaussianKernel(2 * int(math.ceil(3 * sigma)) + 1, sigma)
            gain = float(np.sum(kernel ** 2))          # std of blurred unit noise (2-D)
            noise = np.asarray(cv2.GaussianBlur(white, (0, 0), sigma,
                                                borderType=cv2.BORDER_REFLECT), np.float32)
            noise /= gain
        rms = z * z * cfg.depth_noise_subpixel / (grid.fx * cfg.baseline_m)
        dark_draw = rng.random((h, w), dtype=np.float32)
        rgb = rgb_flat.reshape(h, w, 3)
        luma = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
        dark = (luma < cfg.dark_luma) & (dark_draw < cfg.dark_hole_fraction)
        keep = valid & ~shadow & ~edge & ~dark
        with np.errstate(invalid='ignore'):
            noisy = np.where(keep, (z + rms * noise) * 1000.0, 0.0)
        depth = np.rint(np.clip(noisy, 0.0, 65535.0)).astype(np.uint16)
        depth[keep & (depth == 0)] = 1
        return depth

    def _colour_image(self, grid: RayGrid, rgb_flat: FloatArray,
                      rng: np.random.Generator) -> np.ndarray:
        """Add sensor noise and quantise the colour stream to rgb8."""
        h, w = grid.height, grid.width
        noise = rng.standard_normal((h, w, 3), dtype=np.float32)
        image = rgb_flat.reshape(h, w, 3) + noise * self.config.color_noise_dn
        return np.rint(np.clip(image, 0.0, 255.0)).astype(np.uint8)


def _draw_boxes(grid: RayGrid, boxes: Boxes, z: FloatArray, rgb: NDArray[np.floating[Any]],
                clip: tuple[int, int, int, int] | None = None) -> None:
    """Z-buffer a batch of oriented solids into (z, rgb) in place, in one vectorised pass.

    ``clip`` (col0, col1, row0, row1, end-exclusive) limits drawing to a pixel rectangle.
    """
    if len(boxes) == 0:
        return
    rects = box_rects(grid, boxes.center, boxes.rotation, boxes.half)
    if clip is not None:
        rects[:, 0] = np.maximum(rects[:, 0], clip[0])
        rects[:, 1] = np.minimum(rects[:, 1], clip[1])
        rects[:, 2] = np.maximum(rects[:, 2], clip[2])
        rects[:, 3] = np.minimum(rects[:, 3], clip[3])
        rects[(rects[:, 1] <= rects[:, 0]) | (rects[:, 3] <= rects[:, 2])] = 0
    owner, pix = rect_pixels(rects, grid.width)
    if len(pix) == 0:
        return
    hits = intersect_solids(grid, boxes.center, boxes.rotation, boxes.half, boxes.solid,
                            owner, pix)
    depth = hits.t * grid.z_per_t[pix]
    closer = np.nonzero(depth < z[pix])[0]
    if len(closer) == 0:
        return
    pix, depth = pix[closer], depth[closer]
    np.minimum.at(z, pix, depth)
    nearest = depth == z[pix]
    won = closer[nearest]
    colours = box_surface_rgb(boxes, owner[won], hits.local[won], hits.axis[won])
    rgb[pix[nearest]] = shade(colours, hits.normal[won])


def _draw_capsules(grid: RayGrid, capsules: Capsules, z: FloatArray, rgb: FloatArray) -> None:
    """Z-buffer a batch of capsules into (z, rgb) in place, all in one vectorised pass."""
    if len(capsules) == 0:
        return
    rects = capsule_rects(grid, capsules.a, capsules.b, capsules.radius)
    visible = np.nonzero((rects[:, 1] > rects[:, 0]) & (rects[:, 3] > rects[:, 2]))[0]
    if len(visible) == 0:
        return
    owner, pix = rect_pixels(rects[visible], grid.width)
    a, b = capsules.a[visible], capsules.b[visible]
    batch = capsule_batch(grid.origin, a, b, capsules.radius[visible])
    hit, t = intersect_capsules(grid, batch, owner, pix)
    owner, pix = owner[hit], pix[hit]
    depth = t * grid.z_per_t[pix]
    closer = np.nonzero(depth < z[pix])[0]
    if len(closer) == 0:
        return
    owner, pix, t, depth = owner[closer], pix[closer], t[closer], depth[closer]
    np.minimum.at(z, pix, depth)
    won = np.nonzero(depth == z[pix])[0]
    owner, pix, t = owner[won], pix[won], t[won]
    points = grid.origin + grid.directions[pix] * t[:, None]
    normals = capsule_normals(points, a[owner], b[owner])
    colours = capsule_surface_rgb(capsules, visible[owner], points, normals)
    rgb[pix] = shade(colours, normals)


def _draw_target(grid: RayGrid, target: FloorTarget, z: FloatArray, rgb: FloatArray) -> None:
    """Draw a chessboard (pattern supersampled, depth at the face) into (z, rgb) in place."""
    pose = target.t_map_board
    x0, x1, y0, y1 = target.extent_m()
    corners = np.array([[x0, y0, 0.0], [x1, y0, 0.0], [x0, y1, 0.0], [x1, y1, 0.0]])
    corners_map = pose.apply(corners)
    center = corners_map.mean(axis=0)
    radius = float(np.max(np.linalg.norm(corners_map - center, axis=1))) + 0.01
    _, pix = rect_pixels(sphere_rects(grid, center[None, :], np.array([radius])), grid.width)
    if len(pix) == 0:
        return
    normal = np.array(pose.rotation[:, 2])
    origin_b = pose.inverse().apply(grid.origin)
    t = intersect_plane(grid.origin, grid.directions[pix], np.array(pose.translation), normal)
    hit = np.isfinite(t)
    local = origin_b + (grid.directions[pix[hit]] @ np.array(pose.rotation)) * t[hit, None]
    inside = np.zeros(len(pix), dtype=bool)
    inside[hit] = ~np.isnan(target.albedo(local[:, 0], local[:, 1]))
    depth = t * grid.z_per_t[pix]
    # The face may coincide with the floor (z = 0): the board wins ties within 1 mm.
    draw = inside & (depth <= z[pix] + 0.001)
    pix, depth = pix[draw], depth[draw]
    if len(pix) == 0:
        return
    # Supersample the pattern; samples off the board keep what was there before.
    n = BOARD_SUPERSAMPLING
    offsets = (np.arange(n) + 0.5) / n - 0.5
    du, dv = (a.ravel() for a in np.meshgrid(offsets, offsets))
    cols = (pix % grid.width).astype(np.float64)
    rows = (pix // grid.width).astype(np.float64)
    directions = grid.sub_pixel_directions((cols[:, None] + du).ravel(),
                                           (rows[:, None] + dv).ravel())
    ts = intersect_plane(grid.origin, directions, np.array(pose.translation), normal)
    ts = np.where(np.isfinite(ts), ts, 0.0)
    local = origin_b + (directions @ np.array(pose.rotation)) * ts[:, None]
    grey = target.albedo(local[:, 0], local[:, 1]).reshape(len(pix), n * n)
    facing = normal if float(np.dot(grid.origin - pose.translation, normal)) > 0 else -normal
    light = float(shade(np.ones((1, 3)), facing[None, :])[0, 0])
    before = rgb[pix].copy()
    on_board = ~np.isnan(grey)
    samples = np.where(on_board[:, :, None], grey[:, :, None] * light, before[:, None, :])
    rgb[pix] = samples.mean(axis=1)
    z[pix] = depth
