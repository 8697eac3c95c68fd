"""What the camera renderer draws: the store as boxes, people as capsules, and their colours.

The static store (walls, shelf carcasses) is a list of oriented ``SceneBox``es built once
from the store description; the products in each bin are one solid per unit
(``bin_units``), drawn by their catalog shape: cylinders for cans, cups, bottles and jars,
ellipsoids for fruit, boxes for the rest. How many units stand in a bin follows its stock.
A person is a set of capsules (a sphere is a capsule of length zero) built from a
``BodyState``'s joints, with hair, an optional hat and bag; the items they hold are solids
of their catalog size, turned in the hand. Colours are linear-ish sRGB 0..255 before
shading; ``shade`` applies a fixed light from above, and each unit carries a small light
factor of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any, Iterable, Mapping, Optional, Sequence
import zlib

import numpy as np
from numpy.typing import NDArray

from ..store import Appearance, Product, StoreDescription
from ..transforms import Transform
from .render_geometry import SOLID_BOX, SOLID_CYLINDER, SOLID_ELLIPSOID

FloatArray = NDArray[np.float64]

STRUCTURE_RGB = (118, 124, 134)     # painted steel shelving
WALL_RGB = (226, 222, 212)
FLOOR_RGB = (202, 202, 198)
FLOOR_GROUT_RGB = (160, 160, 156)
OUTSIDE_FLOOR_RGB = (120, 120, 118)
SHOE_RGB = (45, 42, 40)
DEFAULT_HAIR_RGB = (52, 38, 30)    # bodies that carry no hair colour of their own
CAN_TOP_RGB = (188, 188, 194)      # bare aluminium lid
CARTON_CAP_RGB = (236, 236, 232)

FLOOR_TILE_M = 0.6
FLOOR_GROUT_M = 0.008
WALL_HEIGHT_M = 2.5
WALL_THICKNESS_M = 0.1
PANEL_M = 0.02          # shelf side and back panel thickness
BOARD_M = 0.025         # shelf board thickness
PRODUCT_GAP_M = 0.01
UNIT_GAP_M = 0.004      # between units one behind the other in a bin
SHELF_JITTER_M = 0.003  # per-unit placement error on the shelf (uniform +-, metres)
SHELF_JITTER_RAD = 0.06
GRIP_INSET_M = 0.01     # how far inside an item's outline the gripping hand's point is
UNIT_LIGHT_RANGE = (0.9, 1.1)      # per-unit brightness factor (light, print, gloss)
# Packaging of the catalog's ``shape`` names; aliases map onto one of them.
SHAPES = ('box', 'bag', 'can', 'cup', 'bottle', 'jar', 'carton', 'bar', 'fruit', 'wedge')
SHAPE_ALIASES = {'ball': 'fruit', 'apple': 'fruit', 'banana': 'fruit', 'pouch': 'bag',
                 'tub': 'cup', 'tin': 'can'}
_SOLID_OF_SHAPE = {'can': SOLID_CYLINDER, 'cup': SOLID_CYLINDER, 'bottle': SOLID_CYLINDER,
                   'jar': SOLID_CYLINDER, 'fruit': SOLID_ELLIPSOID}
# Shapes that can stand on top of each other in a bin.
STACKABLE = ('box', 'can', 'cup', 'jar', 'carton', 'bar', 'wedge')
_ROUND = ('can', 'cup', 'bottle', 'jar')        # circular cross-section

# Light from above, a little from the south-east; ambient + Lambert.
LIGHT_DIRECTION = np.array([0.25, -0.2, 1.0]) / np.linalg.norm([0.25, -0.2, 1.0])
AMBIENT = 0.5
DIFFUSE = 0.55

# Body model: capsule radii (metres).
HEAD_RADIUS_M = 0.11
NECK_RADIUS_M = 0.055
TORSO_RADIUS_M = 0.12
SHOULDER_RADIUS_M = 0.07
FLANK_RADIUS_M = 0.08
HIP_HALF_WIDTH_M = 0.09
HIP_RADIUS_M = 0.095
THIGH_RADIUS_M = 0.075
SHIN_RADIUS_M = 0.055
FOOT_RADIUS_M = 0.045
FOOT_LENGTH_M = 0.13
UPPER_ARM_RADIUS_M = 0.05
FOREARM_RADIUS_M = 0.04
HAND_RADIUS_M = 0.05
HOLDING_HAND_RADIUS_M = 0.03   # a hand closed round an item, so the item shows
HAT_CROWN_RADIUS_M = 0.1
HAT_BRIM_RADIUS_M = 0.035
BACKPACK_RADIUS_M = 0.1        # two side-by-side capsules, ~0.32 m wide, 0.2 m deep
SHOULDER_BAG_RADIUS_M = 0.08
STRAP_RADIUS_M = 0.015

# Capsule kinds: how a capsule is coloured.
KIND_PLAIN = 0
KIND_HEAD = 1       # hair on top and at the back, skin on the face


@dataclass(frozen=True, eq=False)
class SceneBox:
    """An oriented box: centre and rotation in map, half extents, colours and pattern."""

    center: FloatArray          # (3,)
    rotation: FloatArray        # (3, 3) R_map_box
    half: FloatArray            # (3,)
    color_rgb: tuple[int, int, int]
    accent_rgb: tuple[int, int, int]
    pattern: str                # solid, band, label, window, dots, lid
    item_pitch_m: float = 0.0   # > 0: items one behind the other along box y (top seams)
    shape: str = 'box'          # packaging, one of SHAPES (decides solid and print)
    light: float = 1.0          # brightness factor of this unit

    @property
    def bounding_radius(self) -> float:
        """Return the radius of the sphere around the box."""
        return float(np.linalg.norm(self.half))


def box_from_extent(t_map_frame: Transform, low: Sequence[float], high: Sequence[float],
                    color_rgb: tuple[int, int, int],
                    accent_rgb: tuple[int, int, int] | None = None, pattern: str = 'solid',
                    item_pitch_m: float = 0.0) -> SceneBox:
    """Build a box given by its min/max corners in some frame posed at ``t_map_frame``."""
    lo = np.asarray(low, dtype=np.float64)
    hi = np.asarray(high, dtype=np.float64)
    center = t_map_frame.apply((lo + hi) / 2.0)
    return SceneBox(np.asarray(center, dtype=np.float64),
                    np.array(t_map_frame.rotation, dtype=np.float64), (hi - lo) / 2.0,
                    color_rgb, accent_rgb or color_rgb, pattern, item_pitch_m)


def store_boxes(store: StoreDescription, walls: bool = True,
                products: bool = True) -> list[SceneBox]:
    """Build every static box: walls, shelf carcasses and (full) products in the bins."""
    boxes: list[SceneBox] = []
    if walls:
        width, depth = store.size_m
        t, h = WALL_THICKNESS_M, WALL_HEIGHT_M
        ident = Transform.identity()
        for low, high in (((-t, -t, 0.0), (width + t, 0.0, h)),
                          ((-t, depth, 0.0), (width + t, depth + t, h)),
                          ((-t, 0.0, 0.0), (0.0, depth, h)),
                          ((width, 0.0, 0.0), (width + t, depth, h))):
            boxes.append(box_from_extent(ident, low, high, WALL_RGB))
    for shelf in store.shelves:
        boxes.extend(_shelf_boxes(shelf.t_map_shelf, shelf.size_m,
                                  [(b.min_m, b.max_m, b.skus if products else ())
                                   for b in shelf.bins],
                                  store.catalog))
    return boxes


def _shelf_boxes(t_map_shelf: Transform, size_m: Sequence[float],
                 bins: Iterable[tuple[Sequence[float], Sequence[float], Sequence[str]]],
                 catalog: Mapping[str, Product]) -> list[SceneBox]:
    """Build the carcass (back, sides, top, boards, kick plate) and products of a shelf."""
    sx, sy, sz = (float(v) for v in size_m)
    x0, x1 = -sx / 2.0, sx / 2.0
    bins = list(bins)
    s = STRUCTURE_RGB
    parts = [
        ((x0, sy - PANEL_M, 0.0), (x1, sy, sz)),                     # back panel
        ((x0, 0.0, 0.0), (x0 + PANEL_M, sy, sz)),                    # left side
        ((x1 - PANEL_M, 0.0, 0.0), (x1, sy, sz)),                    # right side
        ((x0, 0.0, sz - BOARD_M), (x1, sy, sz)),                     # top
    ]
    levels = sorted({round(float(b[0][2]), 4) for b in bins})
    lowest = levels[0] if levels else sz
    if lowest > BOARD_M:
        parts.append(((x0, 0.0, 0.0), (x1, PANEL_M, lowest - BOARD_M)))   # kick plate
    for z in levels:
        if z > BOARD_M:
            parts.append(((x0 + PANEL_M, 0.0, z - BOARD_M), (x1 - PANEL_M, sy - PANEL_M, z)))
    boxes = [box_from_extent(t_map_shelf, lo, hi, s) for lo, hi in parts]
    for low, high, skus in bins:
        boxes.extend(_bin_products(t_map_shelf, low, high, [catalog[k] for k in skus]))
    return boxes


def _bin_products(t_map_shelf: Transform, low: Sequence[float], high: Sequence[float],
                  products: Sequence[Product]) -> list[SceneBox]:
    """Fill a bin with every unit it has room for (``bin_units`` with a full stock)."""
    return bin_units(t_map_shelf, low, high, products)


def shape_of(appearance: Appearance) -> str:
    """Return the packaging (one of SHAPES) of a catalog appearance; unknown: box."""
    name = SHAPE_ALIASES.get(appearance.shape, appearance.shape)
    return name if name in SHAPES else 'box'


def _unit_rng(seed: int, *keys: str) -> np.random.Generator:
    """Return a generator fixed by the seed and names (bin, SKU, person, ...)."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def bin_slot_count(low: Sequence[float], high: Sequence[float], n_products: int,
                   appearance: Appearance) -> int:
    """Return how many units of a product fit its share of a bin (``bin_units`` layout)."""
    return len(_slots(low, high, n_products, 0, appearance))


def _slots(low: Sequence[float], high: Sequence[float], n_products: int, index: int,
           appearance: Appearance) -> list[tuple[float, float, float, float, float, float]]:
    """Return unit slots (x0, x1, y0, y1, z0, z1) of product ``index`` in a bin, in fill order.

    Each SKU gets an equal share of the bin width. Units stand in columns across the
    share, one behind the other from the back of the bin, and stack when the shape allows
    and the bin is tall enough. Fill order: bottom layer from the back to the front, then
    the next layer; so the last units taken are at the back, as on a real shelf where
    shoppers take from the front and the top.
    """
    width, depth, height = (float(v) for v in appearance.size_m)
    room_z = float(high[2] - low[2]) - 0.03
    height = min(height, room_z)
    section = (float(high[0]) - float(low[0])) / n_products
    x_start = float(low[0]) + index * section + PRODUCT_GAP_M
    x_end = float(low[0]) + (index + 1) * section - PRODUCT_GAP_M
    columns = max(1, int((x_end - x_start + PRODUCT_GAP_M) // (width + PRODUCT_GAP_M)))
    width = min(width, x_end - x_start)
    used = columns * width + (columns - 1) * PRODUCT_GAP_M
    x0 = x_start + (x_end - x_start - used) / 2.0
    y_front, y_back = float(low[1]) + 0.005, float(high[1]) - 0.01
    depth = min(depth, y_back - y_front)
    rows = max(1, int((y_back - y_front + UNIT_GAP_M) // (depth + UNIT_GAP_M)))
    layers = max(1, int(room_z // height)) if shape_of(appearance) in STACKABLE else 1
    slots = []
    for layer in range(layers):
        z0 = float(low[2]) + layer * height
        for row in range(rows):
            y1 = y_back - row * (depth + UNIT_GAP_M)
            for column in range(columns):
                x = x0 + column * (width + PRODUCT_GAP_M)
                slots.append((x, x + width, y1 - depth, y1, z0, z0 + height))
    return slots


def bin_units(t_map_shelf: Transform, low: Sequence[float], high: Sequence[float],
              products: Sequence[Product], counts: Optional[Sequence[int]] = None,
              seed: int = 0, bin_key: str = '') -> list[SceneBox]:
    """Build one solid per unit standing in a bin (bin corners ``low``/``high``, shelf frame).

    ``counts`` gives the units of each product (same order); None fills the bottom layer
    (every facing, front to back), the look of a shelf nobody told the stock of. A unit
    keeps its slot and its small placement error (yaw, x/y offset, from ``seed`` and
    ``bin_key``) whatever the count, so taking one unit removes exactly that one.
    """
    boxes: list[SceneBox] = []
    if not products:
        return boxes
    rotation = np.array(t_map_shelf.rotation, dtype=np.float64)
    for index, product in enumerate(products):
        look: Appearance = product.appearance
        shape = shape_of(look)
        slots = _slots(low, high, len(products), index, look)
        if counts is None:
            count = sum(1 for slot in slots if slot[4] == slots[0][4])
        else:
            count = max(0, min(len(slots), int(counts[index])))
        rng = _unit_rng(seed, bin_key, product.sku)
        jitter = rng.uniform(-1.0, 1.0, (len(slots), 3))
        light = rng.uniform(*UNIT_LIGHT_RANGE, len(slots))
        for k, (x0, x1, y0, y1, z0, z1) in enumerate(slots[:count]):
            half = np.array([(x1 - x0) / 2.0, (y1 - y0) / 2.0, (z1 - z0) / 2.0])
            centre = np.array([(x0 + x1) / 2.0 + SHELF_JITTER_M * jitter[k, 0],
                               (y0 + y1) / 2.0 + SHELF_JITTER_M * jitter[k, 1],
                               (z0 + z1) / 2.0])
            yaw = SHELF_JITTER_RAD * jitter[k, 2]
            if shape in _ROUND:
                # Round units fill their slot's smaller side.
                half[0] = half[1] = min(half[0], half[1])
            c, s = math.cos(yaw), math.sin(yaw)
            r_unit = rotation @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
            boxes.append(SceneBox(np.asarray(t_map_shelf.apply(centre), dtype=np.float64),
                                  r_unit, half, look.color_rgb, look.accent_rgb,
                                  look.pattern, 0.0, shape, float(light[k])))
    return boxes


def grip_offset(appearance: Appearance) -> FloatArray:
    """Return the item-frame vector from where a hand grips an item to the item's centre.

    An item is held by one side (item -x): the closed hand (a sphere of
    ``HOLDING_HAND_RADIUS_M``) touches that side, so seen from above it covers an edge of
    the item, not the lid or the face in the middle.
    """
    half = np.asarray(appearance.size_m, dtype=np.float64) / 2.0
    shape = shape_of(appearance)
    radius = min(half[0], half[1]) if shape in _ROUND else half[0]
    return np.array([radius + HOLDING_HAND_RADIUS_M - GRIP_INSET_M, 0.0, 0.0])


def held_item_box(appearance: Appearance, position: Sequence[float],
                  rotation: Optional[FloatArray] = None, light: float = 1.0,
                  gripped: bool = False) -> SceneBox:
    """Build a held item: a solid of the product's size, turned by ``rotation``.

    ``rotation`` is R_map_item (item z is the packaging's up); None keeps it upright and
    map-aligned. ``position`` is the item's centre, or with ``gripped`` the point where
    the hand holds it (the centre is then ``grip_offset`` away, turned with the item).
    """
    half = np.asarray(appearance.size_m, dtype=np.float64) / 2.0
    shape = shape_of(appearance)
    if shape in _ROUND:
        half[0] = half[1] = min(half[0], half[1])
    r = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
    centre = np.asarray(position, dtype=np.float64).reshape(3)
    if gripped:
        centre = centre + r @ grip_offset(appearance)
    return SceneBox(centre, r, half, appearance.color_rgb, appearance.accent_rgb,
                    appearance.pattern, 0.0, shape, float(light))


def _axis_rotation(axis: Sequence[float], angle: float) -> FloatArray:
    """Return the rotation by ``angle`` (rad) about a unit ``axis`` (Rodrigues)."""
    x, y, z = (float(v) for v in axis)
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.asarray(np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k),
                      dtype=np.float64)


def hand_rotation(seed: int, person_id: int, index: int, sku: str, in_basket: bool,
                  stamp_ns: int = 0, forward_yaw_rad: Optional[float] = None) -> FloatArray:
    """Return R_map_item of a held item: a per-item pose that wobbles slowly in time.

    In a hand an item points (item x) along the forearm, ``forward_yaw_rad`` (the map yaw
    from elbow to hand; random when None) give or take 35 degrees, rolled about that axis
    (normal, 35 degrees RMS, at most 80) and pitched by up to 20, the way it is grabbed
    and looked at; in
    the basket it stands with a random yaw and a small tilt. The pose is fixed by (seed,
    person, index, SKU) and sways by a few degrees over seconds.
    """
    rng = _unit_rng(seed, f'{person_id}/{index}', sku)
    yaw, phase = rng.uniform(0.0, 2.0 * math.pi, 2)
    t = stamp_ns * 1e-9
    sway = math.sin(0.9 * t + phase)
    if in_basket:
        r_yaw = _axis_rotation((0.0, 0.0, 1.0), yaw + 0.1 * sway)
        tilt_dir, tilt = rng.uniform(0.0, 2.0 * math.pi), rng.uniform(0.0, 0.3)
        return _axis_rotation((math.cos(tilt_dir), math.sin(tilt_dir), 0.0), tilt) @ r_yaw
    if forward_yaw_rad is not None:
        yaw = forward_yaw_rad + rng.uniform(-0.6, 0.6)
    roll = float(np.clip(rng.normal(0.0, 0.6), -1.4, 1.4)) + 0.08 * sway
    pitch = rng.uniform(-0.35, 0.35)
    return np.asarray(_axis_rotation((0.0, 0.0, 1.0), yaw + 0.1 * sway)
                      @ _axis_rotation((0.0, 1.0, 0.0), pitch)
                      @ _axis_rotation((1.0, 0.0, 0.0), roll), dtype=np.float64)


def forearm_yaw(body: Any, hand: str) -> Optional[float]:
    """Return the map yaw (rad) from a body's elbow to its hand, None when not known."""
    joints = getattr(body, 'joints', {})
    if f'{hand}_hand' not in joints or f'{hand}_elbow' not in joints:
        return None
    d = np.asarray(joints[f'{hand}_hand'], dtype=float) - np.asarray(joints[f'{hand}_elbow'],
                                                                      dtype=float)
    return math.atan2(d[1], d[0]) if math.hypot(d[0], d[1]) > 1e-6 else None


def held_item_solid(appearance: Appearance, body: Any, index: int, seed: int,
                    stamp_ns: int) -> SceneBox:
    """Build the solid of ``body.held[index]`` as the renderer draws it at ``stamp_ns``.

    In a hand: gripped at its side, turned by ``hand_rotation`` along the forearm; in the
    basket: centred at its position, nearly upright. Light from ``light_factor``.
    """
    item = body.held[index]
    in_basket = item.hand == 'basket'
    rotation = hand_rotation(seed, body.person_id, index, item.sku, in_basket, stamp_ns,
                             None if in_basket else forearm_yaw(body, item.hand))
    light = light_factor(seed, f'{body.person_id}/{index}/{item.sku}', item.position)
    return held_item_box(appearance, item.position, rotation, light, gripped=not in_basket)


def light_factor(seed: int, key: str, position: Sequence[float]) -> float:
    """Return the brightness of an item at a map position: its own factor x the light field.

    The store's light is not uniform: a smooth field varies by about +-6 % across the floor
    (luminaires in rows), on top of the unit's own factor from (seed, key).
    """
    own = float(_unit_rng(seed, key).uniform(*UNIT_LIGHT_RANGE))
    x, y = float(position[0]), float(position[1])
    field_ = 1.0 + 0.06 * math.sin(2.1 * x + 0.7) * math.cos(1.7 * y + 0.3)
    return own * field_


PATTERNS = ('solid', 'band', 'label', 'window', 'dots', 'lid')


@dataclass(frozen=True, eq=False)
class Boxes:
    """A batch of oriented solids (structure of arrays) for vectorised drawing."""

    center: FloatArray              # (K, 3)
    rotation: FloatArray            # (K, 3, 3) R_map_box
    half: FloatArray                # (K, 3)
    rgb: FloatArray                 # (K, 3)
    accent: FloatArray              # (K, 3)
    pattern: NDArray[np.int64]      # (K,) index into PATTERNS (unknown: solid)
    item_pitch_m: FloatArray        # (K,)
    shape: NDArray[np.int64]        # (K,) index into SHAPES
    solid: NDArray[np.int64]        # (K,) SOLID_* of render_geometry
    light: FloatArray               # (K,) brightness factor

    def __len__(self) -> int:
        """Return the number of boxes."""
        return len(self.half)

    @staticmethod
    def of(boxes: Sequence[SceneBox]) -> Boxes:
        """Batch scene boxes."""
        if not boxes:
            z3 = np.zeros((0, 3))
            zi = np.zeros(0, dtype=np.int64)
            return Boxes(z3, np.zeros((0, 3, 3)), z3, z3, z3, zi, np.zeros(0), zi, zi,
                         np.zeros(0))
        shapes = [b.shape if b.shape in SHAPES else 'box' for b in boxes]
        return Boxes(
            np.array([b.center for b in boxes], dtype=np.float64),
            np.array([b.rotation for b in boxes], dtype=np.float64),
            np.array([b.half for b in boxes], dtype=np.float64),
            np.array([b.color_rgb for b in boxes], dtype=np.float64),
            np.array([b.accent_rgb for b in boxes], dtype=np.float64),
            np.array([PATTERNS.index(b.pattern) if b.pattern in PATTERNS else 0
                      for b in boxes], dtype=np.int64),
            np.array([b.item_pitch_m for b in boxes], dtype=np.float64),
            np.array([SHAPES.index(name) for name in shapes], dtype=np.int64),
            np.array([_SOLID_OF_SHAPE.get(name, SOLID_BOX) for name in shapes],
                     dtype=np.int64),
            np.array([b.light for b in boxes], dtype=np.float64))

    @staticmethod
    def concatenate(parts: Sequence[Boxes]) -> Boxes:
        """Join batches."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return Boxes.of([])
        return Boxes(*(np.concatenate([getattr(p, f) for p in parts])
                       for f in Boxes.__dataclass_fields__))


def _shape_is(shape: NDArray[np.int64], *names: str) -> NDArray[np.bool_]:
    return np.isin(shape, [SHAPES.index(n) for n in names])


def box_surface_rgb(boxes: Boxes, owner: NDArray[np.int64], local: FloatArray,
                    axis: NDArray[np.int64]) -> FloatArray:
    """Return the unshaded colour (N, 3) of solids ``owner`` at box-frame points on ``axis``.

    The print follows real packaging: the pattern's accent (the flavour cue) goes round
    the sides of cans, cups, bottles and jars (a band and the rim on a lidded cup) and on
    the four sides of boxes and cartons,
    on the front and back of bags only (not the gussets, with a crimped seal on top);
    the top carries it where real packs do: yogurt lids (``lid``), printed cup lids,
    bottle caps, jar lids, box tops and the face of a bar. Can tops are bare aluminium
    and carton tops plain with a cap. ``axis`` 2 is a top or bottom face or cap.
    """
    rgb = boxes.rgb[owner].copy()
    if len(owner) == 0:
        return rgb
    half = boxes.half[owner]
    pattern = boxes.pattern[owner]
    shape = boxes.shape[owner]
    accent = boxes.accent[owner]
    round_ = boxes.solid[owner] == SOLID_CYLINDER
    fz = (local[:, 2] + half[:, 2]) / (2.0 * half[:, 2])       # 0 bottom .. 1 top
    # Along the face: x on faces facing +-y, y on faces facing +-x, the angle on cylinders.
    along = np.where(axis == 1, local[:, 0] / (2.0 * half[:, 0]),
                     local[:, 1] / (2.0 * half[:, 1])) + 0.5
    angle = np.arctan2(local[:, 1] / half[:, 1], local[:, 0] / half[:, 0])
    along = np.where(round_, np.mod(angle / (2.0 * np.pi) + 0.5, 1.0), along)
    side = axis != 2
    bag = _shape_is(shape, 'bag')
    printed_side = side & ~(bag & (axis == 0))
    band = printed_side & (fz > 0.38) & (fz < 0.66)
    # Labels wrap all the way round cylinders.
    label = printed_side & (fz > 0.3) & (fz < 0.72) & (
        round_ | ((along > 0.12) & (along < 0.88)))
    window = printed_side & (fz > 0.5) & (fz < 0.82) & (
        (along > 0.28) & (along < 0.72) | round_ & (along > 0.78) & (along < 0.97))
    cell = 0.03
    u = np.where(axis == 2, local[:, 0], along * 2.0 * half[:, 0])
    w = np.where(axis == 2, local[:, 1], local[:, 2])
    du = np.mod(u, cell) - cell / 2.0
    dw = np.mod(w, cell) - cell / 2.0
    dots = du * du + dw * dw < (0.3 * cell) ** 2
    # A lidded cup: the lid's rim seen from the side, and the flavour band printed round
    # the cup's wall.
    lid_side = side & ((fz > 0.93) | (fz > 0.3) & (fz < 0.62))
    mask = np.choose(pattern, [np.zeros(len(owner), dtype=bool), band, label, window, dots,
                               lid_side])
    rgb[mask] = accent[mask]
    # Tops, by packaging. Radial position on round tops: 0 centre .. 1 rim.
    top = (axis == 2) & (local[:, 2] > 0.0)
    radial = np.hypot(local[:, 0] / half[:, 0], local[:, 1] / half[:, 1])
    xr = np.abs(local[:, 0] / half[:, 0])
    yr = np.abs(local[:, 1] / half[:, 1])
    printed = pattern != PATTERNS.index('solid')
    cup = top & _shape_is(shape, 'cup')
    lid = cup & ((pattern == PATTERNS.index('lid')) & (radial < 0.92) | (radial < 0.6))
    rgb[cup & ~lid] = boxes.rgb[owner][cup & ~lid]
    rgb[lid] = accent[lid]
    can = top & _shape_is(shape, 'can')
    rgb[can] = np.where((radial > 0.86)[can, None], 0.8, 1.0) * np.asarray(CAN_TOP_RGB)
    bottle = top & _shape_is(shape, 'bottle')
    rgb[bottle] = np.where((radial < 0.45)[bottle, None], accent[bottle],
                           0.8 * boxes.rgb[owner][bottle])
    jar = top & _shape_is(shape, 'jar')
    rgb[jar] = np.where((radial < 0.9)[jar, None], accent[jar], 0.7 * boxes.rgb[owner][jar])
    carton = top & _shape_is(shape, 'carton')
    cap = carton & (np.hypot(local[:, 0], local[:, 1] - 0.4 * half[:, 1]) < 0.012)
    rgb[carton] = boxes.rgb[owner][carton]
    rgb[cap] = CARTON_CAP_RGB
    box_top = top & _shape_is(shape, 'box', 'wedge') & printed & (xr < 0.55) & (yr < 0.6)
    rgb[box_top] = accent[box_top]
    bar_top = top & _shape_is(shape, 'bar') & printed & (xr < 0.3)
    rgb[bar_top] = accent[bar_top]
    crimp = bag & ((fz > 0.94) | (fz < 0.03))      # sealed, crimped ends of a bag
    rgb[crimp] *= 0.8
    # Seams between the items standing one behind the other (seen on the top).
    pitch = boxes.item_pitch_m[owner]
    with np.errstate(divide='ignore', invalid='ignore'):
        seam = (axis == 2) & (pitch > 0.0) & (
            np.mod(local[:, 1] + half[:, 1], np.where(pitch > 0.0, pitch, 1.0)) < 0.006)
    rgb[seam] *= 0.55
    rgb *= boxes.light[owner][:, None]
    return rgb


def floor_rgb(points: FloatArray, store_size_m: tuple[float, float]) -> FloatArray:
    """Return the unshaded floor colour (N, 3): light tiles and grout, darker outside."""
    x, y = points[:, 0], points[:, 1]
    tx = np.floor(x / FLOOR_TILE_M)
    ty = np.floor(y / FLOOR_TILE_M)
    # A stable per-tile brightness variation.
    hashed = np.mod(np.sin(tx * 12.9898 + ty * 78.233) * 43758.5453, 1.0)
    rgb = np.asarray(FLOOR_RGB, dtype=np.float64) + (hashed[:, None] - 0.5) * 10.0
    gx = np.mod(x, FLOOR_TILE_M)
    gy = np.mod(y, FLOOR_TILE_M)
    grout = (gx < FLOOR_GROUT_M) | (gy < FLOOR_GROUT_M)
    rgb[grout] = FLOOR_GROUT_RGB
    width, depth = store_size_m
    outside = (x < 0.0) | (y < 0.0) | (x > width) | (y > depth)
    rgb[outside] = OUTSIDE_FLOOR_RGB
    return np.asarray(rgb, dtype=np.float64)


def shade(rgb: FloatArray, normals: FloatArray) -> FloatArray:
    """Apply the fixed ambient + Lambert light to colours (N, 3) with unit normals (N, 3)."""
    lambert = np.clip(normals @ LIGHT_DIRECTION, 0.0, 1.0)
    return np.asarray(rgb * (AMBIENT + DIFFUSE * lambert)[:, None], dtype=np.float64)


@dataclass(frozen=True, eq=False)
class Capsules:
    """A batch of capsules (spheres when a == b) with their colouring."""

    a: FloatArray               # (K, 3)
    b: FloatArray               # (K, 3)
    radius: FloatArray          # (K,)
    rgb: FloatArray             # (K, 3) main colour
    rgb2: FloatArray            # (K, 3) second colour (hair for heads)
    kind: NDArray[np.int64]     # (K,) KIND_*
    forward: FloatArray         # (K, 3) the person's facing direction (heads' faces)

    def __len__(self) -> int:
        """Return the number of capsules."""
        return len(self.radius)

    @staticmethod
    def concatenate(parts: Sequence[Capsules]) -> Capsules:
        """Join batches."""
        if not parts:
            z3 = np.zeros((0, 3))
            return Capsules(z3, z3, np.zeros(0), z3, z3, np.zeros(0, dtype=np.int64), z3)
        return Capsules(*(np.concatenate([getattr(p, f) for p in parts])
                          for f in ('a', 'b', 'radius', 'rgb', 'rgb2', 'kind', 'forward')))


def _accessories(body: Any, j: Mapping[str, NDArray[np.float64]], right: FloatArray,
                 forward: FloatArray) -> list[tuple[Any, Any, float, Any, int]]:
    """Return capsules of a body's hat and bag (duck-typed: hat_rgb, bag, bag_rgb)."""
    parts: list[tuple[Any, Any, float, Any, int]] = []
    hat = getattr(body, 'hat_rgb', None)
    head = j['head']
    if hat is not None:
        # A cap: a crown over the top of the head and a brim to the front.
        crown = head + np.array([0.0, 0.0, 0.045])
        parts.append((crown, crown, HAT_CROWN_RADIUS_M, hat, KIND_PLAIN))
        brim = head + 0.1 * forward + np.array([0.0, 0.0, 0.03])
        parts.append((brim - 0.03 * right, brim + 0.03 * right, HAT_BRIM_RADIUS_M, hat,
                      KIND_PLAIN))
    bag = getattr(body, 'bag', '')
    colour = getattr(body, 'bag_rgb', (40, 40, 40))
    up = j['neck'] - j['pelvis']
    length = float(np.linalg.norm(up))
    up = up / length if length > 1e-6 else np.array([0.0, 0.0, 1.0])
    if bag == 'backpack':
        back = -(TORSO_RADIUS_M + BACKPACK_RADIUS_M - 0.03) * forward
        top = j['pelvis'] + 0.85 * length * up + back
        bottom = j['pelvis'] + 0.3 * length * up + back
        parts.append((top - 0.06 * right, bottom - 0.06 * right, BACKPACK_RADIUS_M, colour,
                      KIND_PLAIN))
        parts.append((top + 0.06 * right, bottom + 0.06 * right, BACKPACK_RADIUS_M, colour,
                      KIND_PLAIN))
    elif bag == 'shoulder':
        # Hangs at the left hip, strap over the right shoulder.
        centre = j['pelvis'] - (HIP_HALF_WIDTH_M + 0.1) * right + 0.08 * up
        parts.append((centre - 0.08 * forward, centre + 0.08 * forward, SHOULDER_BAG_RADIUS_M,
                      colour, KIND_PLAIN))
        parts.append((centre, j['right_shoulder'] - 0.02 * forward, STRAP_RADIUS_M, colour,
                      KIND_PLAIN))
    return parts


def body_capsules(body: Any) -> Capsules:
    """Build the capsules of one ``BodyState`` (duck-typed: person_id, joints, *_rgb, held)."""
    j = {name: np.asarray(value, dtype=np.float64).reshape(3)
         for name, value in body.joints.items()}
    right = j['right_shoulder'] - j['left_shoulder']
    right[2] = 0.0
    norm = float(np.linalg.norm(right))
    right = right / norm if norm > 1e-6 else np.array([1.0, 0.0, 0.0])
    forward = np.cross([0.0, 0.0, 1.0], right)
    l_hip = j['pelvis'] - HIP_HALF_WIDTH_M * right
    r_hip = j['pelvis'] + HIP_HALF_WIDTH_M * right
    shirt, trousers, skin = body.shirt_rgb, body.trousers_rgb, body.skin_rgb

    def foot(name: str) -> tuple[np.ndarray, np.ndarray]:
        heel = j[name].copy()
        heel[2] = max(heel[2], FOOT_RADIUS_M)
        return heel, heel + FOOT_LENGTH_M * forward

    lf, rf = foot('left_foot'), foot('right_foot')
    holding = {item.hand for item in body.held}
    hand_r = {side: HOLDING_HAND_RADIUS_M if side in holding else HAND_RADIUS_M
              for side in ('left', 'right')}
    segments = [
        (j['head'], j['head'], HEAD_RADIUS_M, skin, KIND_HEAD),
        (j['neck'], j['head'], NECK_RADIUS_M, skin, KIND_PLAIN),
        (j['neck'], j['pelvis'], TORSO_RADIUS_M, shirt, KIND_PLAIN),
        (j['left_shoulder'], j['right_shoulder'], SHOULDER_RADIUS_M, shirt, KIND_PLAIN),
        (j['left_shoulder'], l_hip, FLANK_RADIUS_M, shirt, KIND_PLAIN),
        (j['right_shoulder'], r_hip, FLANK_RADIUS_M, shirt, KIND_PLAIN),
        (l_hip, r_hip, HIP_RADIUS_M, trousers, KIND_PLAIN),
        (l_hip, j['left_knee'], THIGH_RADIUS_M, trousers, KIND_PLAIN),
        (r_hip, j['right_knee'], THIGH_RADIUS_M, trousers, KIND_PLAIN),
        (j['left_knee'], j['left_foot'], SHIN_RADIUS_M, trousers, KIND_PLAIN),
        (j['right_knee'], j['right_foot'], SHIN_RADIUS_M, trousers, KIND_PLAIN),
        (lf[0], lf[1], FOOT_RADIUS_M, SHOE_RGB, KIND_PLAIN),
        (rf[0], rf[1], FOOT_RADIUS_M, SHOE_RGB, KIND_PLAIN),
        (j['left_shoulder'], j['left_elbow'], UPPER_ARM_RADIUS_M, shirt, KIND_PLAIN),
        (j['right_shoulder'], j['right_elbow'], UPPER_ARM_RADIUS_M, shirt, KIND_PLAIN),
        (j['left_elbow'], j['left_hand'], FOREARM_RADIUS_M, skin, KIND_PLAIN),
        (j['right_elbow'], j['right_hand'], FOREARM_RADIUS_M, skin, KIND_PLAIN),
        (j['left_hand'], j['left_hand'], hand_r['left'], skin, KIND_PLAIN),
        (j['right_hand'], j['right_hand'], hand_r['right'], skin, KIND_PLAIN),
    ]
    segments.extend(_accessories(body, j, right, forward))
    k = len(segments)
    hair = np.asarray(getattr(body, 'hair_rgb', None) or DEFAULT_HAIR_RGB, dtype=np.float64)
    return Capsules(
        a=np.array([s[0] for s in segments]), b=np.array([s[1] for s in segments]),
        radius=np.array([s[2] for s in segments], dtype=np.float64),
        rgb=np.array([s[3] for s in segments], dtype=np.float64),
        rgb2=np.broadcast_to(hair, (k, 3)).copy(),
        kind=np.array([s[4] for s in segments], dtype=np.int64),
        forward=np.broadcast_to(forward, (k, 3)).copy())


def capsule_surface_rgb(capsules: Capsules, index: NDArray[np.int64], points: FloatArray,
                        normals: FloatArray) -> FloatArray:
    """Return the unshaded colour (N, 3) of capsules ``index`` at points with normals."""
    rgb = capsules.rgb[index].copy()
    head = capsules.kind[index] == KIND_HEAD
    if np.any(head):
        n = normals[head]
        facing = np.einsum('ij,ij->i', n, capsules.forward[index[head]])
        hair = (n[:, 2] > 0.15) | (facing < 0.2)
        rgb_head = rgb[head]
        rgb_head[hair] = capsules.rgb2[index[head]][hair]
        rgb[head] = rgb_head
    return rgb
