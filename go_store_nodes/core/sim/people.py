"""Articulated people for the simulated store: physiques, walking and reaching poses.

A person is 13 joints in the map frame (``JOINTS``), posed from a few state variables:
floor position, heading, gait phase and speed, and, when reaching, a hand target with a
crouch and a forward lean chosen so the target is within arm's reach. Elbows and knees
come from two-segment inverse kinematics. Proportions follow standard anthropometric
fractions of stature (shoulder 0.818 H, hip 0.53 H, knee 0.285 H).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Mapping, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

JOINTS = ('head', 'neck', 'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow',
          'left_hand', 'right_hand', 'pelvis', 'left_knee', 'right_knee',
          'left_foot', 'right_foot')
HANDS = ('left', 'right', 'basket')

HEIGHT_MEAN_M = 1.70
HEIGHT_STD_M = 0.09
HEIGHT_RANGE_M = (1.50, 1.95)
SHOULDER_WIDTH_RANGE_M = (0.40, 0.50)
ARM_REACH_RANGE_M = (0.60, 0.80)
WALK_SPEED_RANGE_MPS = (1.0, 1.4)
BROWSE_SPEED_RANGE_MPS = (0.5, 0.8)
MAX_CROUCH_M = 0.6
MAX_LEAN_M = 0.3
FOOT_HEIGHT_M = 0.05
_REACH_MARGIN = 0.95

_SKIN_TONES = ((255, 224, 196), (241, 194, 160), (224, 172, 105), (198, 134, 66),
               (141, 85, 36), (92, 56, 30))
# What people wear, as (weight, rgb): mostly dark and neutral, many dressed alike, some
# saturated colours. Each person's colour is one of these plus a small shade variation.
TOP_COLOURS = (
    (18, (26, 26, 28)),       # black
    (12, (32, 40, 72)),       # navy
    (10, (70, 72, 76)),       # charcoal
    (8, (128, 128, 130)),     # mid grey
    (6, (182, 182, 178)),     # light grey marl
    (12, (232, 232, 228)),    # white
    (6, (72, 96, 136)),       # denim
    (6, (192, 172, 136)),     # beige
    (4, (96, 70, 50)),        # brown
    (4, (86, 90, 56)),        # olive
    (3, (112, 30, 40)),       # burgundy
    (3, (200, 32, 36)),       # red
    (2, (42, 72, 190)),       # royal blue
    (2, (40, 140, 64)),       # green
    (1, (230, 200, 40)),      # yellow
    (1, (232, 120, 30)),      # orange
    (1, (230, 122, 160)),     # pink
    (1, (30, 140, 140)),      # teal
)
TROUSER_COLOURS = (
    (30, (56, 76, 116)),      # blue jeans
    (15, (34, 44, 74)),       # dark jeans
    (20, (28, 28, 30)),       # black
    (10, (90, 90, 95)),       # grey
    (12, (166, 146, 106)),    # khaki
    (5, (80, 60, 45)),        # brown
    (5, (30, 35, 60)),        # navy
    (3, (80, 86, 56)),        # olive
)
HAIR_COLOURS = (
    (30, (24, 20, 18)),       # black
    (30, (56, 40, 30)),       # dark brown
    (15, (96, 70, 46)),       # brown
    (10, (190, 160, 110)),    # blond
    (8, (150, 148, 144)),     # grey
    (2, (214, 212, 206)),     # white
    (5, (140, 70, 36)),       # red
)
HAT_COLOURS = ((4, (26, 26, 28)), (3, (32, 40, 72)), (2, (128, 128, 130)),
               (2, (192, 172, 136)), (1, (200, 32, 36)), (1, (232, 232, 228)))
BAG_COLOURS = ((10, (26, 26, 28)), (4, (32, 40, 72)), (3, (80, 80, 84)), (3, (96, 70, 50)),
               (2, (192, 172, 136)), (1, (200, 32, 36)), (1, (42, 72, 190)),
               (1, (40, 140, 64)))
HAT_PROBABILITY = 0.12
BAGS = ((70, ''), (15, 'backpack'), (15, 'shoulder'))
BAG_KINDS = ('', 'backpack', 'shoulder')
SHADE_STD = 6.0           # per-channel variation of a worn colour around its palette entry


@dataclass(frozen=True)
class HeldItem:
    """An item a person carries: in a hand or in the basket near the pelvis (map, m)."""

    sku: str
    position: np.ndarray
    hand: str

    def __post_init__(self) -> None:
        """Validate the hand."""
        if self.hand not in HANDS:
            raise ValueError(f'hand: must be one of {", ".join(HANDS)}, got {self.hand!r}')


@dataclass(frozen=True)
class BodyState:
    """One person at one instant: joint positions in the map frame (m) and colours."""

    person_id: int
    joints: Mapping[str, np.ndarray]
    shirt_rgb: tuple[int, int, int]
    trousers_rgb: tuple[int, int, int]
    skin_rgb: tuple[int, int, int]
    held: tuple[HeldItem, ...] = ()
    heading_rad: float = 0.0
    role: str = 'shopper'
    shoulder_width_m: float = 0.45
    hair_rgb: Optional[tuple[int, int, int]] = None   # None: the renderer's default
    hat_rgb: Optional[tuple[int, int, int]] = None    # None: no hat
    bag: str = ''                                     # '', 'backpack' or 'shoulder'
    bag_rgb: tuple[int, int, int] = (26, 26, 28)

    def position_xy(self) -> np.ndarray:
        """Floor position (x, y) of the pelvis in map (m)."""
        return np.asarray(self.joints['pelvis'][:2], dtype=float)


@dataclass(frozen=True)
class Physique:
    """Body dimensions, colours and walking speeds of one person."""

    height_m: float
    shoulder_width_m: float
    arm_reach_m: float
    shirt_rgb: tuple[int, int, int]
    trousers_rgb: tuple[int, int, int]
    skin_rgb: tuple[int, int, int]
    walk_speed_mps: float = 1.2
    browse_speed_mps: float = 0.65
    hair_rgb: tuple[int, int, int] = (56, 40, 30)
    hat_rgb: Optional[tuple[int, int, int]] = None
    bag: str = ''
    bag_rgb: tuple[int, int, int] = (26, 26, 28)

    def __post_init__(self) -> None:
        """Validate the dimensions, speeds and colours."""
        checks = (('height_m', self.height_m, HEIGHT_RANGE_M),
                  ('shoulder_width_m', self.shoulder_width_m, SHOULDER_WIDTH_RANGE_M),
                  ('arm_reach_m', self.arm_reach_m, ARM_REACH_RANGE_M),
                  ('walk_speed_mps', self.walk_speed_mps, WALK_SPEED_RANGE_MPS),
                  ('browse_speed_mps', self.browse_speed_mps, BROWSE_SPEED_RANGE_MPS))
        for name, value, (low, high) in checks:
            if not low - 1e-9 <= value <= high + 1e-9:
                raise ValueError(f'{name}: must be in [{low}, {high}], got {value}')
        for name in ('shirt_rgb', 'trousers_rgb', 'skin_rgb', 'hair_rgb', 'hat_rgb',
                     'bag_rgb'):
            colour = getattr(self, name)
            if colour is None and name == 'hat_rgb':
                continue
            if len(colour) != 3 or not all(0 <= c <= 255 for c in colour):
                raise ValueError(f'{name}: must be three values in 0..255, got {colour}')
        if self.bag not in BAG_KINDS:
            raise ValueError(f'bag: must be one of {BAG_KINDS}, got {self.bag!r}')

    @property
    def upper_arm_m(self) -> float:
        """Shoulder to elbow (m)."""
        return 0.46 * self.arm_reach_m

    @property
    def forearm_m(self) -> float:
        """Elbow to hand centre (m)."""
        return 0.54 * self.arm_reach_m

    @property
    def shoulder_height_m(self) -> float:
        """Shoulder joint height standing upright (m)."""
        return 0.818 * self.height_m

    @property
    def hip_height_m(self) -> float:
        """Hip (pelvis joint) height standing upright (m)."""
        return 0.53 * self.height_m

    @property
    def thigh_m(self) -> float:
        """Hip to knee (m)."""
        return 0.245 * self.height_m

    @property
    def shin_m(self) -> float:
        """Knee to ankle (m)."""
        return 0.53 * self.height_m - 0.245 * self.height_m - FOOT_HEIGHT_M + 0.01

    @property
    def step_length_m(self) -> float:
        """Length of one step at normal walking speed (m)."""
        return 0.37 * self.height_m


def _rgb(values: NDArray | Sequence[float]) -> tuple[int, int, int]:
    """Clip and round to an 8-bit RGB triple."""
    r, g, b = (int(round(min(255.0, max(0.0, float(v))))) for v in values)
    return r, g, b


def _pick(rng: np.random.Generator, table: Sequence[tuple[int, tuple[int, int, int]]],
          shade_std: float = SHADE_STD) -> tuple[int, int, int]:
    """Draw a colour from a (weight, rgb) table, with a small shade variation."""
    weights = np.array([w for w, _ in table], dtype=np.float64)
    index = int(rng.choice(len(table), p=weights / weights.sum()))
    return _rgb(np.asarray(table[index][1], dtype=np.float64) + rng.normal(0.0, shade_std, 3))


def sample_physique(rng: np.random.Generator,
                    uniform_rgb: Optional[tuple[int, int, int]] = None) -> Physique:
    """Draw a random adult: stature ~ N(1.70, 0.09) clipped to 1.50-1.95 m, and an outfit.

    Clothes, hair, hat and bag come from the weighted tables above (``TOP_COLOURS`` ...),
    all from ``rng``: a person's colours are constants fixed by the seed, never by the
    person id. ``uniform_rgb`` dresses a member of staff: that top, no hat and no bag.
    """
    height = float(np.clip(rng.normal(HEIGHT_MEAN_M, HEIGHT_STD_M), *HEIGHT_RANGE_M))
    shoulders = float(np.clip(0.259 * height + rng.normal(0.0, 0.015),
                              *SHOULDER_WIDTH_RANGE_M))
    reach = float(np.clip(0.41 * height + rng.normal(0.0, 0.02), *ARM_REACH_RANGE_M))
    shirt = _pick(rng, TOP_COLOURS)
    trousers = _pick(rng, TROUSER_COLOURS)
    skin = _rgb(np.asarray(_SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))])
                + rng.normal(0.0, 6.0, 3))
    hair = _pick(rng, HAIR_COLOURS, 4.0)
    hat = _pick(rng, HAT_COLOURS) if rng.random() < HAT_PROBABILITY else None
    weights = np.array([w for w, _ in BAGS], dtype=np.float64)
    bag = BAGS[int(rng.choice(len(BAGS), p=weights / weights.sum()))][1]
    bag_rgb = _pick(rng, BAG_COLOURS)
    if uniform_rgb is not None:
        shirt, hat, bag = _rgb(uniform_rgb), None, ''
    return Physique(
        height_m=height, shoulder_width_m=shoulders, arm_reach_m=reach, shirt_rgb=shirt,
        trousers_rgb=trousers, skin_rgb=skin,
        walk_speed_mps=float(rng.uniform(*WALK_SPEED_RANGE_MPS)),
        browse_speed_mps=float(rng.uniform(*BROWSE_SPEED_RANGE_MPS)),
        hair_rgb=hair, hat_rgb=hat, bag=bag, bag_rgb=bag_rgb)


Vec3 = tuple[float, float, float]


def _ik(root: Vec3, target: Vec3, first_m: float, second_m: float,
        bend: Vec3) -> tuple[Vec3, Vec3]:
    """Two-segment IK on plain floats (see ``two_link_ik``)."""
    ox, oy, oz = target[0] - root[0], target[1] - root[1], target[2] - root[2]
    distance = math.sqrt(ox * ox + oy * oy + oz * oz)
    if distance < 1e-9:
        ax, ay, az, distance = 0.0, 0.0, -1.0, 1e-9
    else:
        ax, ay, az = ox / distance, oy / distance, oz / distance
    reach = min(max(distance, abs(first_m - second_m) + 1e-6), first_m + second_m - 1e-6)
    if reach != distance:
        end = (root[0] + ax * reach, root[1] + ay * reach, root[2] + az * reach)
    else:
        end = (float(target[0]), float(target[1]), float(target[2]))
    cos_angle = (first_m ** 2 + reach ** 2 - second_m ** 2) / (2.0 * first_m * reach)
    cos_angle = max(-1.0, min(1.0, cos_angle))
    sin_angle = math.sqrt(1.0 - cos_angle * cos_angle)
    along = bend[0] * ax + bend[1] * ay + bend[2] * az
    sx, sy, sz = bend[0] - ax * along, bend[1] - ay * along, bend[2] - az * along
    norm = math.sqrt(sx * sx + sy * sy + sz * sz)
    if norm < 1e-9:
        sx, sy, sz = ay, -ax, 0.0          # axis x up
        norm = math.sqrt(sx * sx + sy * sy)
        if norm < 1e-9:
            sx, sy, sz, norm = 1.0, 0.0, 0.0, 1.0
    sx, sy, sz = sx / norm, sy / norm, sz / norm
    middle = (root[0] + first_m * (cos_angle * ax + sin_angle * sx),
              root[1] + first_m * (cos_angle * ay + sin_angle * sy),
              root[2] + first_m * (cos_angle * az + sin_angle * sz))
    return middle, end


def two_link_ik(root: NDArray, target: NDArray, first_m: float, second_m: float,
                bend: NDArray) -> tuple[NDArray, NDArray]:
    """Return (middle joint, end) of a two-segment chain from ``root`` towards ``target``.

    The middle joint (elbow, knee) bends towards ``bend``; a target out of reach is
    replaced by the nearest reachable point on the line to it.
    """
    r, t, b = (tuple(float(v) for v in np.asarray(x, dtype=float)[:3])
               for x in (root, target, bend))
    middle, end = _ik(r, t, first_m, second_m, b)  # type: ignore[arg-type]
    return np.array(middle), np.array(end)


def _rotation(heading_rad: float) -> NDArray:
    """Rotation about z taking the body frame (x forward, y left) into map."""
    c, s = math.cos(heading_rad), math.sin(heading_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def to_body_frame(point: NDArray, x_m: float, y_m: float, heading_rad: float) -> NDArray:
    """Express a map point in the body frame of a person at (x, y, heading)."""
    return _rotation(heading_rad).T @ (np.asarray(point, dtype=float) - [x_m, y_m, 0.0])


def shoulder_body(physique: Physique, side: str, crouch_m: float, lean_m: float) -> NDArray:
    """Shoulder position in the body frame for a crouch and a forward lean (m)."""
    sign = 1.0 if side == 'left' else -1.0
    return np.array([lean_m, sign * physique.shoulder_width_m / 2.0,
                     physique.shoulder_height_m - crouch_m])


def reach_posture(physique: Physique, target_body: NDArray, side: str) -> tuple[float, float]:
    """Return (crouch_m, lean_m) that put a body-frame target within the arm's reach.

    Raises ValueError when even the deepest crouch and lean do not reach (the person
    stands too far away).
    """
    arm = _REACH_MARGIN * (physique.upper_arm_m + physique.forearm_m)
    sign = 1.0 if side == 'left' else -1.0
    lateral = float(target_body[1]) - sign * physique.shoulder_width_m / 2.0
    lean = float(np.clip(float(target_body[0]) - 0.30, 0.0, 0.2))
    while True:
        horizontal = math.hypot(float(target_body[0]) - lean, lateral)
        if horizontal < arm or lean >= MAX_LEAN_M:
            break
        lean = min(MAX_LEAN_M, lean + 0.02)
    if horizontal >= arm:
        raise ValueError(f'target {horizontal:.2f} m away horizontally, arm reach {arm:.2f} m')
    vertical_room = math.sqrt(arm ** 2 - horizontal ** 2)
    drop = physique.shoulder_height_m - float(target_body[2])
    crouch = max(0.0, drop - vertical_room + 0.02)
    if crouch > MAX_CROUCH_M:
        raise ValueError(f'target {target_body[2]:.2f} m high needs a crouch of {crouch:.2f} m')
    if -drop > vertical_room:
        raise ValueError(f'target {target_body[2]:.2f} m high is above the reach')
    return crouch, lean


def basket_position(physique: Physique, x_m: float, y_m: float, heading_rad: float,
                    crouch_m: float, index: int) -> NDArray:
    """Map position of the ``index``-th item in the basket carried near the pelvis."""
    bx = 0.12 + 0.03 * (index % 3)
    by = -(physique.shoulder_width_m / 2.0 + 0.05)
    bz = physique.hip_height_m - 0.7 * crouch_m - 0.08 + 0.04 * (index // 3)
    c, s = math.cos(heading_rad), math.sin(heading_rad)
    return np.array([c * bx - s * by + x_m, s * bx + c * by + y_m, bz])


@dataclass(frozen=True)
class PoseInput:
    """What drives a pose: floor position, heading, gait and optional hand targets."""

    x_m: float
    y_m: float
    heading_rad: float
    gait_phase_rad: float = 0.0
    speed_mps: float = 0.0
    crouch_m: float = 0.0
    lean_m: float = 0.0
    left_target: Optional[NDArray] = None
    left_amount: float = 0.0
    right_target: Optional[NDArray] = None
    right_amount: float = 0.0


def pose_joints(physique: Physique, pose: PoseInput) -> dict[str, NDArray]:
    """Return every joint of ``JOINTS`` in map for one pose."""
    c, s = math.cos(pose.heading_rad), math.sin(pose.heading_rad)
    px, py = pose.x_m, pose.y_m
    height = physique.height_m
    crouch, lean = pose.crouch_m, pose.lean_m
    walking = min(1.0, pose.speed_mps / 1.2)
    phase = pose.gait_phase_rad
    bob = 0.01 * walking * abs(math.cos(phase))
    upper, fore_m = physique.upper_arm_m, physique.forearm_m
    pelvis_x = -0.25 * crouch
    hip_z = physique.hip_height_m - 0.7 * crouch + bob
    body: dict[str, Vec3] = {
        'head': (1.05 * lean + 0.01, 0.0, 0.925 * height - crouch + bob),
        'neck': (0.95 * lean, 0.0, 0.855 * height - crouch + bob),
        'pelvis': (pelvis_x, 0.0, hip_z),
    }
    for side, sign in (('left', 1.0), ('right', -1.0)):
        shoulder = (lean, sign * physique.shoulder_width_m / 2.0,
                    physique.shoulder_height_m - crouch + bob)
        body[f'{side}_shoulder'] = shoulder
        # Legs: the feet alternate along the walking direction, the swing foot lifts.
        leg_phase = phase if side == 'left' else phase + math.pi
        stride = 0.5 * physique.step_length_m * walking
        foot = (stride * math.sin(leg_phase) - 0.1 * crouch, sign * 0.1,
                FOOT_HEIGHT_M + 0.07 * walking * max(0.0, math.cos(leg_phase)))
        knee, foot = _ik((pelvis_x, sign * 0.09, hip_z), foot, physique.thigh_m,
                         physique.shin_m, (1.0, 0.0, 0.0))
        body[f'{side}_knee'] = knee
        body[f'{side}_foot'] = foot
        # Arms: hanging and swinging opposite to the leg on the same side.
        swing = -0.35 * walking * math.sin(leg_phase)
        elbow = (shoulder[0] + upper * math.sin(swing), shoulder[1] + upper * sign * 0.08,
                 shoulder[2] - upper * math.cos(swing))
        fore = swing + 0.25
        hand = (elbow[0] + fore_m * math.sin(fore), elbow[1] + fore_m * sign * 0.05,
                elbow[2] - fore_m * math.cos(fore))
        target = pose.left_target if side == 'left' else pose.right_target
        amount = min(1.0, pose.left_amount if side == 'left' else pose.right_amount)
        if target is not None and amount > 0.0:
            dx, dy = float(target[0]) - px, float(target[1]) - py
            goal = (c * dx + s * dy, -s * dx + c * dy, float(target[2]))
            hand_goal = (hand[0] + amount * (goal[0] - hand[0]),
                         hand[1] + amount * (goal[1] - hand[1]),
                         hand[2] + amount * (goal[2] - hand[2]))
            elbow, hand = _ik(shoulder, hand_goal, upper, fore_m, (0.0, sign * 0.6, -1.0))
        body[f'{side}_elbow'] = elbow
        body[f'{side}_hand'] = hand
    local = np.array([body[name] for name in JOINTS])
    world = np.empty_like(local)
    world[:, 0] = c * local[:, 0] - s * local[:, 1] + px
    world[:, 1] = s * local[:, 0] + c * local[:, 1] + py
    world[:, 2] = local[:, 2]
    return dict(zip(JOINTS, world, strict=True))
