"""The store description: cameras, shelves and bins, gates and the product catalog.

One YAML file (``config/store.yaml``) describes a store; the calibration node, the
launch description, the URDF, the simulator and the evaluation all read it through
``load_store_description``. Every problem is reported as a ``StoreDescriptionError``
naming the file and the field, e.g. ``cameras[3] (cam_04).pose.rotation.matrix``.
Schema: docs/store-description.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
import math
import pathlib
from typing import Any, Mapping

import numpy as np
import yaml

from .transforms import (
    check_rotation_matrix,
    rotation_from_quaternion_xyzw,
    rotation_from_rpy,
    Transform,
)

GATE_KINDS = ('entry', 'exit', 'staff')


class StoreDescriptionError(ValueError):
    """The store description is missing something or contradicts itself."""


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of one image stream, as in sensor_msgs/CameraInfo."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str
    d: tuple[float, ...]

    def k(self) -> np.ndarray:
        """Return the 3x3 camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, scale: float) -> Intrinsics:
        """Intrinsics of the same optics with the image resized by ``scale``.

        Pixel centres map as cx' = (cx + 0.5) * scale - 0.5; a RealSense stream at another
        resolution of the same sensor has (close to) these intrinsics.
        """
        if not (math.isfinite(scale) and scale > 0.0):
            raise ValueError(f'scale must be positive, got {scale}')
        return replace(self, width=max(1, int(round(self.width * scale))),
                       height=max(1, int(round(self.height * scale))),
                       fx=self.fx * scale, fy=self.fy * scale,
                       cx=(self.cx + 0.5) * scale - 0.5, cy=(self.cy + 0.5) * scale - 0.5)


@dataclass(frozen=True)
class CameraModel:
    """A kind of RGB-D camera: both streams' intrinsics, rate and range."""

    name: str
    description: str
    fps: float
    depth_range_m: tuple[float, float]
    depth: Intrinsics
    color: Intrinsics
    t_depth_color: Transform


@dataclass(frozen=True)
class Camera:
    """One ceiling camera: its model and the pose of its depth optical frame in map."""

    camera_id: str
    model: CameraModel
    serial: str
    t_map_depth: Transform

    @property
    def depth_frame_id(self) -> str:
        """Optical frame of the depth image (realsense2_camera's name)."""
        return f'{self.camera_id}_depth_optical_frame'

    @property
    def color_frame_id(self) -> str:
        """Optical frame of the colour image (realsense2_camera's name)."""
        return f'{self.camera_id}_color_optical_frame'

    @property
    def t_map_color(self) -> Transform:
        """Pose of the colour optical frame in map."""
        return self.t_map_depth @ self.model.t_depth_color


@dataclass(frozen=True)
class Bin:
    """One bin of a shelf: a box in the shelf frame on one load cell."""

    bin_id: str
    shelf_id: str
    load_cell: str
    min_m: tuple[float, float, float]
    max_m: tuple[float, float, float]
    skus: tuple[str, ...]

    def center_m(self) -> np.ndarray:
        """Centre of the bin box in the shelf frame (m)."""
        return (np.asarray(self.min_m) + np.asarray(self.max_m)) / 2.0

    def size_m(self) -> np.ndarray:
        """Edge lengths of the bin box (m)."""
        return np.asarray(self.max_m) - np.asarray(self.min_m)


@dataclass(frozen=True)
class Shelf:
    """A shelf unit: pose of its shelf frame in map, size and bins."""

    shelf_id: str
    t_map_shelf: Transform
    size_m: tuple[float, float, float]
    bins: tuple[Bin, ...]

    @property
    def frame_id(self) -> str:
        """TF frame of the shelf."""
        return self.shelf_id


@dataclass(frozen=True)
class Gate:
    """A gate zone: a floor rectangle in map where people enter or leave."""

    gate_id: str
    kind: str
    min_m: tuple[float, float]
    max_m: tuple[float, float]

    def contains(self, x_m: float, y_m: float) -> bool:
        """Whether a floor point in map lies in the zone."""
        return self.min_m[0] <= x_m <= self.max_m[0] and self.min_m[1] <= y_m <= self.max_m[1]


@dataclass(frozen=True)
class Appearance:
    """How a product looks, for rendering and as a reference for recognition."""

    shape: str
    size_m: tuple[float, float, float]
    color_rgb: tuple[int, int, int]
    accent_rgb: tuple[int, int, int]
    pattern: str


@dataclass(frozen=True)
class Product:
    """One catalog entry (a SKU)."""

    sku: str
    name: str
    brand: str
    flavour: str
    category: str
    unit_weight_g: float
    weight_tolerance_g: float
    price_cents: int
    appearance: Appearance


@dataclass(frozen=True)
class StoreDescription:
    """The whole store, validated; built by ``load_store_description``."""

    name: str
    map_frame: str
    size_m: tuple[float, float]
    currency: str
    camera_models: Mapping[str, CameraModel]
    cameras: tuple[Camera, ...]
    shelves: tuple[Shelf, ...]
    gates: tuple[Gate, ...]
    catalog: Mapping[str, Product]
    source_path: str = ''
    extrinsics_source: Mapping[str, str] = field(default_factory=dict)
    # Per camera, figures image calibration recorded beside the pose in the extrinsics
    # file: reprojection_rms_px, floor_height_error_m, floor_tilt_error_deg.
    calibration_quality: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # Reference images of the catalog products (`product_images`, relative to the store
    # file; resolved by load_store_description); '' when the description names none.
    product_images: str = ''

    def camera(self, camera_id: str) -> Camera:
        """Return the camera with this id, or raise KeyError naming the known ones."""
        for camera in self.cameras:
            if camera.camera_id == camera_id:
                return camera
        raise KeyError(f'unknown camera {camera_id!r}; known: '
                       f'{", ".join(c.camera_id for c in self.cameras)}')

    def shelf(self, shelf_id: str) -> Shelf:
        """Return the shelf with this id, or raise KeyError."""
        for shelf in self.shelves:
            if shelf.shelf_id == shelf_id:
                return shelf
        raise KeyError(f'unknown shelf {shelf_id!r}')

    def bins(self) -> dict[str, Bin]:
        """Every bin by id."""
        return {b.bin_id: b for shelf in self.shelves for b in shelf.bins}

    def product(self, sku: str) -> Product:
        """Return the catalog entry of a SKU, or raise KeyError."""
        try:
            return self.catalog[sku]
        except KeyError:
            raise KeyError(f'unknown SKU {sku!r}') from None

    def gates_of_kind(self, kind: str) -> tuple[Gate, ...]:
        """Gates of one kind ('entry', 'exit' or 'staff')."""
        return tuple(g for g in self.gates if g.kind == kind)


class _Reader:
    """Typed access to a YAML mapping that names the field path in every error."""

    def __init__(self, data: Any, where: str, source: str) -> None:
        self.where = where
        self.source = source
        if not isinstance(data, dict):
            self.fail(f'must be a mapping, got {type(data).__name__}')
        self.data: dict[str, Any] = data

    def fail(self, message: str) -> None:
        raise StoreDescriptionError(f'{self.source}: {self.where}: {message}')

    def child(self, key: str) -> _Reader:
        return _Reader(self.get(key), f'{self.where}.{key}', self.source)

    def get(self, key: str) -> Any:
        if key not in self.data:
            self.fail(f'missing required field {key!r}')
        return self.data[key]

    def text(self, key: str, default: str | None = None) -> str:
        if default is not None and key not in self.data:
            return default
        value = self.get(key)
        if not isinstance(value, str) or (default is None and not value):
            self.fail(f'{key!r} must be a non-empty string, got {value!r}')
        return value

    def number(self, key: str, minimum: float | None = None) -> float:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            self.fail(f'{key!r} must be a finite number, got {value!r}')
        if minimum is not None and value < minimum:
            self.fail(f'{key!r} must be >= {minimum}, got {value}')
        return float(value)

    def integer(self, key: str, minimum: int | None = None) -> int:
        value = self.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f'{key!r} must be an integer, got {value!r}')
        if minimum is not None and value < minimum:
            self.fail(f'{key!r} must be >= {minimum}, got {value}')
        return int(value)

    def vector(self, key: str, length: int) -> tuple[float, ...]:
        value = self.get(key)
        if not isinstance(value, list) or len(value) != length or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in value):
            self.fail(f'{key!r} must be a list of {length} finite numbers, got {value!r}')
        return tuple(float(v) for v in value)

    def items(self, key: str) -> list[_Reader]:
        value = self.get(key)
        if not isinstance(value, list) or not value:
            self.fail(f'{key!r} must be a non-empty list')
        readers = []
        for index, item in enumerate(value):
            label = f'{self.where}.{key}[{index}]'
            if isinstance(item, dict) and isinstance(item.get('id'), str):
                label += f' ({item["id"]})'
            readers.append(_Reader(item, label, self.source))
        return readers


def _read_pose(reader: _Reader) -> Transform:
    """Read ``{translation_m, rotation: {matrix | quaternion_xyzw | rpy_deg}}``."""
    translation = reader.vector('translation_m', 3)
    rotation = reader.child('rotation')
    given = [key for key in ('matrix', 'quaternion_xyzw', 'rpy_deg') if key in rotation.data]
    if len(given) != 1:
        rotation.fail('give exactly one of matrix, quaternion_xyzw, rpy_deg; '
                      f'got {given or "none"}')
    try:
        if given[0] == 'matrix':
            matrix = np.asarray(rotation.data['matrix'], dtype=float)
            rotation_matrix = check_rotation_matrix(matrix)
        elif given[0] == 'quaternion_xyzw':
            rotation_matrix = rotation_from_quaternion_xyzw(rotation.vector('quaternion_xyzw', 4))
        else:
            roll, pitch, yaw = (math.radians(v) for v in rotation.vector('rpy_deg', 3))
            rotation_matrix = rotation_from_rpy(roll, pitch, yaw)
    except ValueError as error:
        if isinstance(error, StoreDescriptionError):
            raise
        rotation.fail(f'{given[0]}: {error}')
    return Transform(rotation_matrix, np.asarray(translation))


def _read_intrinsics(reader: _Reader) -> Intrinsics:
    d = reader.get('d')
    if not isinstance(d, list) or not all(isinstance(v, (int, float)) for v in d):
        reader.fail(f"'d' must be a list of distortion coefficients, got {d!r}")
    intrinsics = Intrinsics(
        width=reader.integer('width', 1), height=reader.integer('height', 1),
        fx=reader.number('fx', 1.0), fy=reader.number('fy', 1.0),
        cx=reader.number('cx'), cy=reader.number('cy'),
        distortion_model=reader.text('distortion_model'), d=tuple(float(v) for v in d))
    if not (0 <= intrinsics.cx < intrinsics.width and 0 <= intrinsics.cy < intrinsics.height):
        reader.fail('principal point (cx, cy) must lie inside the image')
    return intrinsics


def _unique(readers: list[_Reader], key: str, what: str) -> None:
    seen: set[str] = set()
    for reader in readers:
        value = reader.text(key)
        if value in seen:
            reader.fail(f'duplicate {what} {value!r}')
        seen.add(value)


def _color(reader: _Reader, key: str) -> tuple[int, int, int]:
    values = reader.vector(key, 3)
    if not all(0 <= v <= 255 for v in values):
        reader.fail(f'{key!r} must hold 0..255 values, got {values}')
    r, g, b = (int(v) for v in values)
    return r, g, b


def parse_store_description(data: Any, source: str = '<memory>',
                            extrinsics: Mapping[str, Transform] | None = None,
                            extrinsics_source: str = '') -> StoreDescription:
    """Validate a parsed YAML document and build the description.

    ``extrinsics`` (camera id -> T_map_depth), when given, replaces the poses written in
    the description, e.g. with the output of image-based calibration.
    """
    root = _Reader(data, 'store description', source)
    store = root.child('store')
    models: dict[str, CameraModel] = {}
    models_reader = root.child('camera_models')
    for name in models_reader.data:
        model = models_reader.child(name)
        near, far = model.vector('depth_range_m', 2)
        if not 0.0 < near < far:
            model.fail('depth_range_m must be 0 < near < far')
        models[name] = CameraModel(
            name=name, description=model.text('description', ''),
            fps=model.number('fps', 0.1), depth_range_m=(near, far),
            depth=_read_intrinsics(model.child('depth')),
            color=_read_intrinsics(model.child('color')),
            t_depth_color=_read_pose(model.child('depth_to_color')))

    camera_readers = root.items('cameras')
    _unique(camera_readers, 'id', 'camera id')
    cameras = []
    sources: dict[str, str] = {}
    for reader in camera_readers:
        camera_id = reader.text('id')
        model_name = reader.text('model')
        if model_name not in models:
            reader.fail(f'unknown camera model {model_name!r}; known: {", ".join(models)}')
        if extrinsics is not None and camera_id in extrinsics:
            t_map_depth = extrinsics[camera_id]
            sources[camera_id] = extrinsics_source
        else:
            if 'pose' not in reader.data:
                reader.fail('missing extrinsic: no pose in the description and none in the '
                            'calibration file; calibrate this camera or write its pose')
            t_map_depth = _read_pose(reader.child('pose'))
            sources[camera_id] = 'store_description'
        cameras.append(Camera(camera_id, models[model_name], reader.text('serial', ''),
                              t_map_depth))

    catalog: dict[str, Product] = {}
    product_readers = root.items('catalog')
    _unique(product_readers, 'sku', 'SKU')
    for reader in product_readers:
        look = reader.child('appearance')
        size = look.vector('size_m', 3)
        if min(size) <= 0.0:
            look.fail('size_m must be positive')
        weight = reader.number('unit_weight_g', 0.0)
        tolerance = reader.number('weight_tolerance_g', 0.0)
        if weight <= 0.0 or tolerance >= weight:
            reader.fail('unit_weight_g must be > 0 and weight_tolerance_g below it')
        product = Product(
            sku=reader.text('sku'), name=reader.text('name'), brand=reader.text('brand'),
            flavour=reader.text('flavour'), category=reader.text('category'),
            unit_weight_g=weight, weight_tolerance_g=tolerance,
            price_cents=reader.integer('price_cents', 0),
            appearance=Appearance(look.text('shape'), (size[0], size[1], size[2]),
                                  _color(look, 'color_rgb'), _color(look, 'accent_rgb'),
                                  look.text('pattern')))
        catalog[product.sku] = product

    shelf_readers = root.items('shelves')
    _unique(shelf_readers, 'id', 'shelf id')
    all_bins = [b for s in shelf_readers for b in s.items('bins')]
    _unique(all_bins, 'id', 'bin id')
    _unique(all_bins, 'load_cell', 'load cell')
    shelves = []
    for reader in shelf_readers:
        shelf_id = reader.text('id')
        size = reader.vector('size_m', 3)
        if min(size) <= 0.0:
            reader.fail('size_m must be positive')
        bins = []
        for bin_reader in reader.items('bins'):
            low, high = bin_reader.vector('min_m', 3), bin_reader.vector('max_m', 3)
            if not all(a < b for a, b in zip(low, high, strict=True)):
                bin_reader.fail('min_m must be below max_m on every axis')
            skus = bin_reader.get('skus')
            if not isinstance(skus, list) or not skus:
                bin_reader.fail("'skus' must be a non-empty list of catalog SKUs")
            for sku in skus:
                if sku not in catalog:
                    bin_reader.fail(f'unknown SKU {sku!r}: not in the catalog')
            bins.append(Bin(bin_reader.text('id'), shelf_id, bin_reader.text('load_cell'),
                            (low[0], low[1], low[2]), (high[0], high[1], high[2]),
                            tuple(skus)))
        shelves.append(Shelf(shelf_id, _read_pose(reader.child('pose')),
                             (size[0], size[1], size[2]), tuple(bins)))

    gate_readers = root.items('gates')
    _unique(gate_readers, 'id', 'gate id')
    gates = []
    for reader in gate_readers:
        kind = reader.text('kind')
        if kind not in GATE_KINDS:
            reader.fail(f'kind must be one of {", ".join(GATE_KINDS)}, got {kind!r}')
        low, high = reader.vector('min_m', 2), reader.vector('max_m', 2)
        if not (low[0] < high[0] and low[1] < high[1]):
            reader.fail('min_m must be below max_m')
        gates.append(Gate(reader.text('id'), kind, (low[0], low[1]), (high[0], high[1])))
    for kind in ('entry', 'exit'):
        if not any(g.kind == kind for g in gates):
            root.fail(f'needs at least one {kind} gate')

    width, depth = store.vector('size_m', 2)
    product_images = root.text('product_images', '')
    return StoreDescription(
        name=store.text('name'), map_frame=store.text('map_frame'), size_m=(width, depth),
        currency=store.text('currency'), camera_models=models, cameras=tuple(cameras),
        shelves=tuple(shelves), gates=tuple(gates), catalog=catalog, source_path=source,
        extrinsics_source=sources, product_images=product_images)


def _read_yaml(path: pathlib.Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise StoreDescriptionError(f'{path}: {what} not found') from None
    except yaml.YAMLError as error:
        raise StoreDescriptionError(f'{path}: not valid YAML: {error}') from None


def load_store_description(path: str | pathlib.Path) -> StoreDescription:
    """Read and validate a store description file.

    If it names an ``extrinsics_file`` (relative to itself), camera poses found there
    replace the ones written in the description.
    """
    path = pathlib.Path(path)
    data = _read_yaml(path, 'store description')
    extrinsics = None
    extrinsics_path = ''
    quality: dict[str, dict[str, float]] = {}
    if isinstance(data, dict) and data.get('extrinsics_file'):
        extrinsics_path = str(path.parent / str(data['extrinsics_file']))
        extrinsics, quality = load_extrinsics(extrinsics_path)
    description = parse_store_description(data, str(path), extrinsics, extrinsics_path)
    images = description.product_images
    return replace(description, calibration_quality=quality,
                   product_images=str(path.parent / images) if images else '')


QUALITY_FIELDS = ('reprojection_rms_px', 'floor_height_error_m', 'floor_tilt_error_deg')


def load_extrinsics(path: str | pathlib.Path) -> tuple[dict[str, Transform],
                                                        dict[str, dict[str, float]]]:
    """Read camera poses (``cameras: {id: {pose: ...}}``) written by calibration.

    Returns the poses (T_map_depth) and, per camera, the quality figures recorded with them.
    """
    path = pathlib.Path(path)
    data = _read_yaml(path, 'extrinsics file')
    cameras = _Reader(data, 'extrinsics', str(path)).child('cameras')
    poses = {}
    quality: dict[str, dict[str, float]] = {}
    for camera_id in cameras.data:
        entry = cameras.child(camera_id)
        poses[camera_id] = _read_pose(entry.child('pose'))
        quality[camera_id] = {key: entry.number(key) for key in QUALITY_FIELDS
                              if key in entry.data}
    return poses, quality


def static_transforms(description: StoreDescription) -> list[tuple[str, str, Transform]]:
    """Every static transform the store publishes: (parent, child, T_parent_child).

    map -> each camera's depth and colour optical frames, map -> each shelf. The
    calibration node publishes exactly these, and the URDF draws exactly these.
    """
    transforms: list[tuple[str, str, Transform]] = []
    for camera in description.cameras:
        transforms.append((description.map_frame, camera.depth_frame_id, camera.t_map_depth))
        transforms.append((description.map_frame, camera.color_frame_id, camera.t_map_color))
    for shelf in description.shelves:
        transforms.append((description.map_frame, shelf.frame_id, shelf.t_map_shelf))
    return transforms
