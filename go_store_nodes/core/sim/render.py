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
with ``f_px`` the depth focal length of the camera *model* (the physical sensor, whatever
``image_scale`` the bag is rendered at: a 0.1-scale bag has the error in mm of a full one)
and baseline 50 mm. The error field is spatially correlated (a fine component, a few
native pixels, plus a coarse wave, both Gaussian-filtered white noise). Holes where the
right imager cannot see what the left (reference) imager sees (the occlusion shadow left
of near objects and the band at the left image edge), on the far side of depth jumps, in
clumps on dark surfaces and dark hair (more often the darker) and outside the model's
depth range; flying pixels (depths between foreground and background) along depth
discontinuities. Colour gets white sensor noise.

Noise comes from banks generated once per image size and seed (``_NoiseBank``): each
frame picks fields and a random offset into them from a generator seeded by
(seed, camera, stamp_ns), so a frame is deterministic for those and nothing is drawn
pixel by pixel per frame. ``Renderer.render_frames`` renders the cameras of one instant
together; the per-pixel work (people, the depth sensor model) runs in the compiled
kernels of ``render_jit``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import math
import statistics
from typing import Any, Mapping, Optional, Sequence
import zlib

import cv2
import numpy as np
from numpy.typing import NDArray

from ..store import Camera, Intrinsics, StoreDescription
from ..transforms import Transform
from .render_geometry import (
    box_rects,
    intersect_plane,
    intersect_solids,
    make_ray_grid,
    NEAR_M,
    RayGrid,
    rect_pixels,
    sphere_rects,
)
from .render_jit import capsule_shade, capsule_zbuffer, depth_sensor, spheres_in_view
from .render_scene import (
    AMBIENT,
    bin_units,
    body_capsules,
    box_surface_rgb,
    Boxes,
    Capsules,
    DIFFUSE,
    floor_rgb,
    held_item_solid,
    KIND_HEAD,
    LIGHT_DIRECTION,
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
    # Pixel sizes below are native pixels of the camera model; scaled with the image.
    noise_blur_sigma_px: float = 1.0      # correlation of the fine depth noise
    noise_coarse_sigma_px: float = 4.0    # correlation of the coarse depth-error wave ...
    noise_coarse_fraction: float = 0.1    # ... and its share of the error variance
    edge_jump_m: float = 0.1              # a depth jump this large invalidates its far side
    edge_hole_px: int = 1                 # ... over this many pixels
    flying_pixel_fraction: float = 0.5    # near-side pixels of a jump that mix both depths
    dark_luma: float = 30.0               # surfaces at most this dark (0..255) lose depth ...
    dark_hole_fraction: float = 0.6       # ... at this fraction of their pixels, fading ...
    dark_luma_fade: float = 58.0          # ... to none at this luma (dark hair ~ 48, steel 60+)
    dark_blob_sigma_px: float = 1.5       # holes on dark surfaces come in clumps this wide
    color_noise_dn: float = 2.0           # colour sensor noise RMS per channel (0..255)
    noise_bank_fields: int = 8            # pre-generated noise fields per image size
    walls: bool = True

    def __post_init__(self) -> None:
        """Validate the options."""
        if not (math.isfinite(self.image_scale) and 0.0 < self.image_scale <= 4.0):
            raise ValueError(f'image_scale must be in (0, 4], got {self.image_scale}')
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f'seed must be a non-negative integer, got {self.seed!r}')
        for name in ('depth_noise_subpixel', 'noise_blur_sigma_px', 'noise_coarse_sigma_px',
                     'dark_blob_sigma_px', 'color_noise_dn'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f'{name} must be >= 0, got {value}')
        for name in ('baseline_m', 'edge_jump_m'):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f'{name} must be > 0, got {value}')
        if self.edge_hole_px < 0:
            raise ValueError(f'edge_hole_px must be >= 0, got {self.edge_hole_px}')
        if not 0.0 <= self.dark_luma < self.dark_luma_fade <= 255.0:
            raise ValueError(f'need 0 <= dark_luma < dark_luma_fade <= 255, got '
                             f'{self.dark_luma}, {self.dark_luma_fade}')
        for name in ('dark_hole_fraction', 'noise_coarse_fraction', 'flying_pixel_fraction'):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f'{name} must be in [0, 1], got {value}')
        if not 1 <= self.noise_bank_fields <= 256:
            raise ValueError(f'noise_bank_fields must be in [1, 256], '
                             f'got {self.noise_bank_fields}')


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
    """Render depth and colour images of the store's cameras (exact ray casting)."""

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
        self._banks: dict[tuple[int, int], _NoiseBank] = {}
        self._rays = _RaySet([(self.intrinsics(c.camera_id), c.camera_id) for c in store.cameras])
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
        return self.render_frames([camera_id], bodies, stamp_ns, extra, stock)[0]

    def render_frames(self, camera_ids: Sequence[str], bodies: Sequence[Any], stamp_ns: int,
                      extra: Sequence[FloorTarget] = (),
                      stock: Optional[Mapping[str, Mapping[str, int]]] = None
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Render several cameras at one instant: ``render`` of each, in one batch.

        The same images as ``render`` camera by camera (noise is per seed, camera and
        ``stamp_ns``), but the people of every stream are ray-cast in one compiled pass.
        """
        for target in extra:
            if not isinstance(target, FloorTarget):
                raise ValueError(f'extra may only hold FloorTarget, got {type(target).__name__}')
        if len(set(camera_ids)) != len(camera_ids):
            raise ValueError(f'camera_ids repeat a camera: {list(camera_ids)}')
        if stock is not None:
            self.set_stock(stock)
        views = [self._view(camera_id) for camera_id in camera_ids]
        for view in views:
            self._refresh_bins(view.depth)
            self._refresh_bins(view.color)
        dynamic = self._dynamic_scene(bodies, stamp_ns)
        rays = self._rays
        selected = [(rays.stream_of(view, kind), stream) for view in views
                    for kind, stream in enumerate((view.depth, view.color))]
        z = rays.z
        rgb: np.ndarray = rays.rgb             # float32: colours need no more
        for index, stream in selected:
            part = rays.part(index)
            z[part] = stream.z
            rgb[part] = stream.rgb
            for target in extra:
                _draw_target(stream.grid, target, z[part], rgb[part])
        _draw_capsules(rays, [index for index, _ in selected], dynamic.capsules)
        boxes = dynamic.boxes
        if len(boxes):
            # Held items: only streams where a bounding sphere (of the whole smear) shows;
            # elsewhere they would draw nothing.
            streams = np.array([index for index, _ in selected], dtype=np.int64)
            reach = np.linalg.norm(boxes.half, axis=1)
            if dynamic.smear is not None:
                reach = reach + 0.5 * np.linalg.norm(dynamic.smear, axis=1)
            seen = spheres_in_view(
                rays.origin[streams], rays.rotation[streams], rays.k[streams],
                rays.size[streams], np.ascontiguousarray(boxes.center, dtype=np.float64),
                np.ascontiguousarray(reach, dtype=np.float64), NEAR_M)
            for (index, stream), visible in zip(selected, seen, strict=True):
                if visible:
                    part = rays.part(index)
                    blur = index % 2 == 1                  # the colour stream
                    self._draw_items(stream, dynamic, z[part], rgb[part], blur)
        frames = []
        for view in views:
            depth_part = rays.part(rays.stream_of(view, 0))
            color_part = rays.part(rays.stream_of(view, 1))
            entropy = [self.config.seed, view.key, int(stamp_ns) % (1 << 64)]
            rng = np.random.default_rng(np.random.SeedSequence(entropy))
            depth = self._depth_image(view, z[depth_part], rgb[depth_part], rng)
            colour = self._colour_image(view.color.grid, rgb[color_part], rng)
            frames.append((depth, colour))
        return frames

    def _bank(self, height: int, width: int) -> _NoiseBank:
        """Return the noise bank of an image size (made on first use)."""
        bank = self._banks.get((height, width))
        if bank is None:
            bank = _NoiseBank(height, width, self.config)
            self._banks[(height, width)] = bank
        return bank

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
            self._rays.add(view)
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
                 blur: bool = False) -> tuple[FloatArray, np.ndarray]:
        """Draw targets, people and held items over one stream's background (any stream)."""
        z = stream.z.copy()
        rgb: np.ndarray = stream.rgb.copy()    # float32: colours need no more
        for target in targets:
            _draw_target(stream.grid, target, z, rgb)
        _draw_capsules(_RaySet.of_stream(stream.grid, z, rgb), [0], dynamic.capsules)
        self._draw_items(stream, dynamic, z, rgb, blur)
        return z, rgb

    def _draw_items(self, stream: _Stream, dynamic: _Dynamic, z: np.ndarray,
                    rgb: np.ndarray, blur: bool = False) -> None:
        """Draw held items into a stream's (z, rgb) in place, nearest surface wins.

        With ``blur`` (the colour stream), items in a moving hand are drawn at
        ``BLUR_SAMPLES`` points of their travel during the exposure and averaged: a mild
        motion blur. Depth keeps the mid-exposure position.
        """
        if not blur or dynamic.smear is None:
            _draw_boxes(stream.grid, dynamic.boxes, z, rgb)
            return
        # Only the pixels the items can reach change: keep what is under them there.
        grid = stream.grid
        samples = [replace(dynamic.boxes, center=dynamic.boxes.center + f * dynamic.smear)
                   for f in np.linspace(-0.5, 0.5, BLUR_SAMPLES)]
        # The sorted set of those pixels (a mask: np.unique of the big lists is slower).
        covered = np.zeros(grid.pixel_count, dtype=bool)
        for b in samples:
            covered[rect_pixels(box_rects(grid, b.center, b.rotation, b.half), grid.width)[1]] \
                = True
        reach = np.flatnonzero(covered)
        z_under, rgb_under = z[reach], rgb[reach]
        total = np.zeros(rgb_under.shape)
        z_mid = z_under
        for index, shifted in enumerate(samples):
            z[reach], rgb[reach] = z_under, rgb_under
            _draw_boxes(grid, shifted, z, rgb)
            total += rgb[reach]
            if 2 * index == BLUR_SAMPLES - 1:
                z_mid = z[reach]
        z[reach], rgb[reach] = z_mid, total / BLUR_SAMPLES

    # Sensor models -----------------------------------------------------------------------

    def _depth_image(self, view: _View, z_flat: FloatArray, rgb_flat: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
        """Turn true optical depth into a D435-like uint16 depth image (mm, 0 = no data).

        Holes outside the depth range and in the stereo occlusion shadow (the right imager,
        +baseline along x, sees pixel u at u - disparity in rendered pixels: a pixel is
        hidden when a nearer pixel to its right lands on or left of it there, and the band
        at the left edge falls outside the right image). Matching fails next to a jump:
        the far side loses ``edge_hole_px`` pixels and the near side's boundary pixel
        often mixes both depths (a flying pixel). Dark surfaces lose depth in clumps.
        Noise at the physical camera's focal length (not the rendered one). The per-pixel
        work is ``render_jit.depth_sensor``.
        """
        cfg = self.config
        grid = view.depth.grid
        h, w = grid.height, grid.width
        bank = self._bank(h, w)
        # Every frame draws the same picks in the same order, whatever the options.
        sign = 1.0 if rng.random() < 0.5 else -1.0
        noise = bank.depth_field(rng)
        dark_draw = bank.dark_field(rng)
        flying_draw = bank.uniform_field(rng)
        near, far = view.camera.model.depth_range_m
        fx_native = view.camera.model.depth.fx
        gain = sign * cfg.depth_noise_subpixel / (fx_native * cfg.baseline_m)
        return np.asarray(depth_sensor(
            z_flat.reshape(h, w), np.ascontiguousarray(rgb_flat, dtype=np.float32).reshape(
                h, w, 3), noise, dark_draw, flying_draw, bank.threshold_lut,
            grid.fx * cfg.baseline_m, near, far, cfg.edge_jump_m, cfg.edge_hole_px,
            cfg.flying_pixel_fraction, gain))

    def _colour_image(self, grid: RayGrid, rgb_flat: np.ndarray,
                      rng: np.random.Generator) -> np.ndarray:
        """Add sensor noise and quantise the colour stream to rgb8 (rounded, saturated)."""
        h, w = grid.height, grid.width
        rgb = np.ascontiguousarray(rgb_flat.reshape(h, w, 3), dtype=np.float32)
        noise = self._bank(h, w).colour_noise(rng)
        return np.asarray(cv2.add(rgb, noise, dtype=cv2.CV_8U))


class _NoiseBank:
    """Pre-generated noise of one image size: fields picked and offset per frame.

    ``fields`` arrays of each kind, ``margin`` pixels larger than the image on every side;
    a frame takes one field and a random crop of it (depth noise also a random sign).
    Generated once from the renderer's seed and the image size, so deterministic.
    """

    def __init__(self, height: int, width: int, config: RenderConfig) -> None:
        """Generate the fields (a few tens of ms at 424x240)."""
        self.height, self.width = height, width
        scale = config.image_scale
        self.margin = max(8, int(math.ceil(2.0 * config.noise_coarse_sigma_px * scale)))
        rng = np.random.default_rng(np.random.SeedSequence(
            [config.seed, 0x6E6F697365, height, width]))
        shape = (config.noise_bank_fields, height + 2 * self.margin, width + 2 * self.margin)
        coarse = config.noise_coarse_fraction
        fine = _correlated(rng, shape, config.noise_blur_sigma_px * scale)
        wave = _correlated(rng, shape, config.noise_coarse_sigma_px * scale)
        self.depth = np.sqrt(np.float32(1.0 - coarse)) * fine + np.sqrt(np.float32(coarse)) * wave
        self.dark = _correlated(rng, shape, config.dark_blob_sigma_px * scale)
        self.uniform = rng.random(shape, dtype=np.float32)
        size = height * width * 3
        self.colour = rng.standard_normal(2 * size, dtype=np.float32)
        self.colour *= np.float32(config.color_noise_dn)
        # Dropout on dark surfaces: probability by luma, as a threshold on the unit field.
        luma = np.arange(256, dtype=np.float64)
        fade = np.clip((config.dark_luma_fade - luma)
                       / (config.dark_luma_fade - config.dark_luma), 0.0, 1.0)
        probability = config.dark_hole_fraction * fade
        normal = statistics.NormalDist()
        self.threshold_lut = np.array(
            [-np.inf if q <= 0.0 else np.inf if q >= 1.0 else normal.inv_cdf(q)
             for q in probability], dtype=np.float32)

    def _crop(self, fields: NDArray[np.float32], rng: np.random.Generator
              ) -> NDArray[np.float32]:
        k = int(rng.integers(len(fields)))
        dy, dx = (int(v) for v in rng.integers(0, 2 * self.margin + 1, size=2))
        return fields[k, dy:dy + self.height, dx:dx + self.width]

    def depth_field(self, rng: np.random.Generator) -> NDArray[np.float32]:
        """Return a unit-variance correlated depth-error field (H, W)."""
        return self._crop(self.depth, rng)

    def dark_field(self, rng: np.random.Generator) -> NDArray[np.float32]:
        """Return a unit-variance clumpy field (H, W) compared with ``dark_threshold``."""
        return self._crop(self.dark, rng)

    def uniform_field(self, rng: np.random.Generator) -> NDArray[np.float32]:
        """Return a uniform [0, 1) field (H, W)."""
        return self._crop(self.uniform, rng)

    def colour_noise(self, rng: np.random.Generator) -> NDArray[np.float32]:
        """Return white colour noise (H, W, 3), a window of the flat bank."""
        size = self.height * self.width * 3
        start = int(rng.integers(0, size + 1))
        return self.colour[start:start + size].reshape(self.height, self.width, 3)


def _correlated(rng: np.random.Generator, shape: tuple[int, int, int],
                sigma_px: float) -> NDArray[np.float32]:
    """Return unit-variance Gaussian-filtered white noise fields (white below 0.3 px)."""
    fields = rng.standard_normal(shape, dtype=np.float32)
    if sigma_px >= 0.3:
        for field in fields:
            cv2.GaussianBlur(field, (0, 0), sigma_px, dst=field,
                             borderType=cv2.BORDER_REFLECT)
    for field in fields:
        field /= np.float32(field.std())
    return fields


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


class _RaySet:
    """The rays of every stream of the store's cameras side by side, for batched drawing.

    Stream ``2 * i`` is camera i's depth stream, ``2 * i + 1`` its colour stream; a flat
    pixel index is the stream's offset + row * width + column. Rays are copied in as each
    camera's view is made; ``z`` and ``rgb`` are scratch buffers of the same layout.
    """

    def __init__(self, cameras: Sequence[tuple[tuple[Intrinsics, Intrinsics], str]]) -> None:
        """Lay out the streams (nothing is filled yet)."""
        self.camera_index = {camera_id: i for i, (_, camera_id) in enumerate(cameras)}
        sizes = [k.width * k.height for pair, _ in cameras for k in pair]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        n = int(self.offsets[-1])
        s = len(sizes)
        self.grids: list[RayGrid | None] = [None] * s
        self.origin = np.zeros((s, 3))
        self.rotation = np.zeros((s, 3, 3))
        self.k = np.zeros((s, 4))                  # fx, fy, cx, cy
        self.size = np.zeros((s, 2), dtype=np.int64)
        # np.zeros maps memory lazily: cameras never rendered cost nothing.
        self.dx = np.zeros(n, dtype=np.float32)
        self.dy = np.zeros(n, dtype=np.float32)
        self.dz = np.zeros(n, dtype=np.float32)
        self.z_per_t = np.zeros(n)
        self.z = np.zeros(n)
        self.rgb = np.zeros((n, 3), dtype=np.float32)
        self.owner = np.full(n, -1, dtype=np.int64)   # capsule pass scratch, kept at -1
        self.t_won = np.zeros(n, dtype=np.float32)
        self.touched = np.zeros(n, dtype=np.int64)

    @classmethod
    def of_stream(cls, grid: RayGrid, z: FloatArray, rgb: np.ndarray) -> _RaySet:
        """Return a set of one stream drawing into ``z``/``rgb`` (no copies of the rays)."""
        rays = cls([])
        n = grid.pixel_count
        rays.offsets = np.array([0, n], dtype=np.int64)
        rays.grids = [grid]
        rays.origin = grid.origin[None, :].astype(np.float64)
        rays.rotation = grid.rotation[None, :, :].astype(np.float64)
        rays.k = np.array([[grid.fx, grid.fy, grid.cx, grid.cy]])
        rays.size = np.array([[grid.width, grid.height]], dtype=np.int64)
        rays.dx, rays.dy, rays.dz = grid.dx, grid.dy, grid.dz
        rays.z_per_t = np.ascontiguousarray(grid.z_per_t, dtype=np.float64)
        rays.z, rays.rgb = z, rgb
        rays.owner = np.full(n, -1, dtype=np.int64)
        rays.t_won = np.zeros(n, dtype=np.float32)
        rays.touched = np.zeros(n, dtype=np.int64)
        return rays

    def stream_of(self, view: _View, kind: int) -> int:
        """Return the stream index of a view's depth (0) or colour (1) stream."""
        return 2 * self.camera_index[view.camera.camera_id] + kind

    def part(self, index: int) -> slice:
        """Return the flat pixel range of a stream."""
        return slice(int(self.offsets[index]), int(self.offsets[index + 1]))

    def add(self, view: _View) -> None:
        """Copy a new view's rays in."""
        for kind, stream in enumerate((view.depth, view.color)):
            index = self.stream_of(view, kind)
            grid = stream.grid
            part = self.part(index)
            self.grids[index] = grid
            self.origin[index] = grid.origin
            self.rotation[index] = grid.rotation
            self.k[index] = (grid.fx, grid.fy, grid.cx, grid.cy)
            self.size[index] = (grid.width, grid.height)
            self.dx[part], self.dy[part], self.dz[part] = grid.dx, grid.dy, grid.dz
            self.z_per_t[part] = grid.z_per_t


def _draw_capsules(rays: _RaySet, streams: Sequence[int], capsules: Capsules) -> None:
    """Z-buffer capsules into ``rays.z``/``rays.rgb`` of several streams.

    ``render_jit.capsule_zbuffer`` ray-casts every (stream, capsule) pair over only the
    pixels of its rows that can meet the capsule and keeps the nearest hit per pixel;
    ``render_jit.capsule_shade`` colours the won pixels. Streams are independent: the
    result is the one of drawing stream by stream.
    """
    if len(capsules) == 0 or not streams:
        return
    index = np.asarray(streams, dtype=np.int64)
    origins = np.ascontiguousarray(rays.origin[index])
    count = capsule_zbuffer(
        origins, np.ascontiguousarray(rays.rotation[index]), np.ascontiguousarray(
            rays.k[index]), np.ascontiguousarray(rays.size[index]), rays.offsets[index],
        capsules.a, capsules.b, capsules.radius, NEAR_M, rays.dx, rays.dy, rays.dz,
        rays.z_per_t, rays.z, rays.owner, rays.t_won, rays.touched)
    pix = rays.touched[:count]
    owner = rays.owner[pix]
    rays.owner[pix] = -1
    capsule_shade(pix, owner, rays.t_won, rays.dx, rays.dy, rays.dz, origins, capsules.a,
                  capsules.b, capsules.rgb, capsules.rgb2, capsules.kind == KIND_HEAD,
                  capsules.forward, LIGHT_DIRECTION, AMBIENT, DIFFUSE, rays.rgb)


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
