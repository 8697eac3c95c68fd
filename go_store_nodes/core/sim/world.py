"""The simulated store world: people, shelf stock, hard behaviours and sensors.

``Simulation(scenario, store).run()`` steps the world at 60 Hz (the load-cell rate) and
yields a ``Tick`` per step: everyone's ``BodyState``, whether cameras take a frame (and
which frames are dropped), the load-cell batches that completed and the QR check-ins.
``Simulation.truth`` is complete once ``run()`` is exhausted. Everything random comes
from generators seeded by the scenario's seed, so a seed always gives the same ticks
and the same truth.

People walk on paths planned on a visibility graph around the shelves (footprints from
the store description, inflated by 0.4 m) and steer around each other (sampled velocity
obstacles, then a separation pass: pelvises never come closer than 0.26 m). Shoppers
walk in from outside through the entry door to the scanner in the entry gate zone (one
QR scan per party, a moment after the holder reaches it; a tailgater may slip in behind),
leave through the exit gate and its door; associates use the staff gate. A shopper walks to the
bins on its list, browses, reaches into the bin (the hand goes into the bin box, the
body crouches and leans as needed), picks, and carries the item in the hand and then in
a basket near the pelvis. Interface contract: docs/simulation.md.
"""

from __future__ import annotations

from collections import deque
import dataclasses
from dataclasses import dataclass, field
import heapq
import math
import pathlib
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np
from numpy.typing import NDArray

from ..ledger.tokens import load_private_key, TokenIssuer
from ..store import Bin, Gate, Shelf, StoreDescription
from .cameras import CameraCapture, CameraRig, CameraTimingConfig
from .loadcells import draw_unit_weights, LoadCellArray, LoadCellBatchData, LoadCellConfig
from .people import (
    basket_position,
    BodyState,
    HeldItem,
    JOINTS,
    Physique,
    pose_joints,
    PoseInput,
    reach_posture,
    sample_physique,
    to_body_frame,
)
from .scenario import BEHAVIOURS, Scenario
from .truth import (
    compute_receipts,
    Truth,
    TruthCameraClock,
    TruthCameraOutage,
    TruthCheckIn,
    TruthEpisode,
    TruthEvent,
    TruthFrame,
    TruthFramePerson,
    TruthPerson,
    TruthTouch,
)

STEP_HZ = 60
DT_S = 1.0 / STEP_HZ
INFLATION_M = 0.40            # path clearance from shelf footprints
NODE_INFLATION_M = 0.45       # visibility-graph corner nodes sit just outside it
WALL_MARGIN_M = 0.30          # keep people this far inside the store walls
BODY_CLEARANCE_M = 0.15       # a pelvis never comes closer to a shelf footprint
ACCEL_MPS2 = 1.2
DECEL_MPS2 = 1.0
TURN_RATE_RAD_S = 6.0
BROWSE_NEAR_SHELF_M = 0.6
FOLLOW_MAX_SPEED_MPS = 1.4
TANGLE_CONTACT_M = 0.38      # pelvises this close count as walking in contact
# Crowd motion, pelvis to pelvis (m): steering keeps COMFORT_GAP_M from strangers (the
# hard gap while arriving at a stand) and PARTNER_GAP_M from a partner (tangle, hand-off,
# shared reach); the separation pass after each step never leaves two pelvises closer
# than HARD_GAP_M (PARTNER_HARD_GAP_M for partners).
COMFORT_GAP_M = 0.46
PARTNER_GAP_M = 0.30
HARD_GAP_M = 0.36
PARTNER_HARD_GAP_M = 0.26
SEPARATION_STEP_M = 0.008     # the pass pushes a pair apart by at most this per step (0.5
                              # m/s), except what is needed to keep PARTNER_HARD_GAP_M
RESERVE_GAP_M = 0.55          # a stand is free when nobody stands or means to stand nearer
NEIGHBOUR_RANGE_M = 2.5       # people farther away are ignored by steering
AVOID_HORIZON_S = 2.0         # steering looks this far ahead for collisions
AVOID_WEIGHT = 1.0            # cost (m/s per m/s of speed) of a collision 1 s ahead
RIGHT_HAND_BIAS = 0.08        # cost (per m/s of speed) of dodging left: both dodge right
IMPATIENCE_PER_S = 0.7        # cost (per m/s of speed lost, per s without progress) of
                              # going slow: standing still stops being the cheapest way out
STEER_OFFSETS_RAD = tuple(math.radians(a) for a in (15, -15, 30, -30, 45, -45, 60, -60,
                                                    80, -80, 100, -100))
STEER_SPEED_FACTORS = (1.0, 0.6, 0.3)
WAYPOINT_REACHED_M = 0.12     # an intermediate waypoint this close counts as passed
STUCK_REPLAN_S = 4.0          # no progress on a walk for this long: re-plan the path
STUCK_GIVE_UP_S = 10.0        # ... for this long within STUCK_GIVE_UP_M of the goal: stop
STUCK_GIVE_UP_M = 1.5
DOOR_HALF_WIDTH_M = 0.5       # doors in the store wall at the entry and exit gates
OUTSIDE_START_M = (2.5, 3.5)  # shoppers start this far outside the entry door
OUTSIDE_END_M = 2.5           # and disappear this far outside the exit door
TOKEN_TTL_NS = 120 * 10 ** 9
ENTRY_STRAGGLER_S = 20.0      # the next party waits at most this long after a scan for
                              # the last of those walking in on it
RUNNING_LATE_MARGIN_S = 15.0  # a shopper this short of time to reach the exit drops the
                              # rest of the list and walks out (crowds make walks slower
                              # than planned)
TOUCH_LIFT_PROBABILITY = 0.6  # a touch lifts a unit and puts it back; otherwise a press only
TOUCH_LEAVE_PROBABILITY = 0.4  # after a touch the shopper leaves the item and walks on
DEFAULT_KEY = pathlib.Path('demo_keys') / 'store_app_private.pem'


@dataclass(frozen=True)
class CheckInData:
    """One QR scan at a gate; ``account_id`` is for truth only (the bag has gate and token)."""

    gate_id: str
    token: str
    account_id: str


@dataclass(frozen=True)
class Tick:
    """One 60 Hz step of the world."""

    stamp_ns: int
    bodies: tuple[BodyState, ...]
    camera_frame: bool
    dropped_cameras: frozenset[str]
    load_cells: tuple[LoadCellBatchData, ...]
    check_ins: tuple[CheckInData, ...]
    step: int = 0
    # Units per SKU in every bin (bin id -> SKU -> count) after this step's events; set on
    # steps where a camera captures (None otherwise), for the renderer's shelves.
    stock: Optional[Mapping[str, Mapping[str, int]]] = None
    # Camera frames taken at this step and delivered (header stamp, arrival time); each
    # camera has its own phase, so they need not fall on ``camera_frame`` steps.
    captures: tuple[CameraCapture, ...] = ()


def stamp_of_step(start_ns: int, step: int) -> int:
    """Stamp (ns) of a 60 Hz step, rounded to the nearest nanosecond."""
    return start_ns + (step * 10 ** 9 + STEP_HZ // 2) // STEP_HZ


def _smooth(x: float) -> float:
    """Smoothstep on [0, 1]."""
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def _envelope(fraction: float, rise: float = 0.4, fall: float = 0.6) -> float:
    """0 -> 1 over [0, rise], 1 until ``fall``, back to 0 at 1 (smoothstep edges)."""
    if fraction < rise:
        return _smooth(fraction / rise)
    if fraction <= fall:
        return 1.0
    return _smooth((1.0 - fraction) / (1.0 - fall))


def _wrap(angle: float) -> float:
    """Wrap an angle to (-pi, pi]."""
    return math.atan2(math.sin(angle), math.cos(angle))


# Candidate velocities of steering: each offset (rad) at each speed factor, and the
# preferred direction at reduced speed.
_STEER_OFFSETS = np.concatenate([np.repeat(STEER_OFFSETS_RAD, len(STEER_SPEED_FACTORS)),
                                 np.zeros(len(STEER_SPEED_FACTORS) - 1)])
_STEER_FACTORS = np.concatenate([np.tile(STEER_SPEED_FACTORS, len(STEER_OFFSETS_RAD)),
                                 STEER_SPEED_FACTORS[1:]])
_STEER_ANGLES = _STEER_OFFSETS


def _time_to_collision(velocity: NDArray, relative: NDArray, others: NDArray,
                       gaps: NDArray) -> NDArray:
    """Earliest time (s) each candidate velocity (K, 2) brings a neighbour within its gap.

    ``relative`` (N, 2) are the neighbours' positions relative to the agent, ``others``
    (N, 2) their velocities, ``gaps`` (N,) the pelvis distances to keep. 0 when already
    closer and approaching, inf when never.
    """
    closing = velocity[:, None, :] - others[None, :, :]            # (K, N, 2)
    a = np.einsum('knj,knj->kn', closing, closing)
    b = np.einsum('nj,knj->kn', relative, closing)                 # > 0: approaching
    c = np.einsum('nj,nj->n', relative, relative) - gaps ** 2      # < 0: already close
    discriminant = b * b - a * c[None, :]
    with np.errstate(divide='ignore', invalid='ignore'):
        hit = (b - np.sqrt(np.maximum(discriminant, 0.0))) / a
    ttc = np.where((a > 1e-12) & (discriminant >= 0.0) & (b > 0.0) & (hit >= 0.0), hit, np.inf)
    ttc = np.where(c[None, :] < 0.0, np.where(b > 0.0, 0.0, np.inf), ttc)
    return np.asarray(ttc.min(axis=1))


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Door:
    """An opening in the store wall at a gate; ``point(u, v)`` is in door coordinates.

    ``u`` runs along the wall (m from the door centre), ``v`` along the outward normal
    (m; > 0 outside the store, < 0 inside).
    """

    gate_id: str
    centre: NDArray
    normal: NDArray
    tangent: NDArray
    half_width_m: float

    def point(self, u: float, v: float) -> NDArray:
        """Return the map floor point at door coordinates (u, v)."""
        return self.centre + u * self.tangent + v * self.normal

    def coordinates(self, points: NDArray) -> tuple[NDArray, NDArray]:
        """Door coordinates (u, v) of map floor points (N, 2)."""
        offset = np.atleast_2d(points) - self.centre
        return offset @ self.tangent, offset @ self.normal


def door_of(gate: Gate, store_size_m: Sequence[float]) -> Door:
    """Put a door in the wall nearest to a gate zone, centred on the zone."""
    low, high = np.asarray(gate.min_m, dtype=float), np.asarray(gate.max_m, dtype=float)
    centre = (low + high) / 2.0
    width, depth = float(store_size_m[0]), float(store_size_m[1])
    walls = [(centre[0], np.array([0.0, centre[1]]), np.array([-1.0, 0.0]), high[1] - low[1]),
             (width - centre[0], np.array([width, centre[1]]), np.array([1.0, 0.0]),
              high[1] - low[1]),
             (centre[1], np.array([centre[0], 0.0]), np.array([0.0, -1.0]), high[0] - low[0]),
             (depth - centre[1], np.array([centre[0], depth]), np.array([0.0, 1.0]),
              high[0] - low[0])]
    _, point, normal, span = min(walls, key=lambda wall: wall[0])
    tangent = np.array([-normal[1], normal[0]])
    return Door(gate.gate_id, point, normal, tangent, min(DOOR_HALF_WIDTH_M, span / 2.0))


class Geometry:
    """Shelf footprints (boxes in shelf frames), store bounds and path planning."""

    def __init__(self, store: StoreDescription) -> None:
        """Collect the footprints and build the visibility graph."""
        shelves = store.shelves
        self.origin = np.array([s.t_map_shelf.translation[:2] for s in shelves])
        self.rotation = np.array([s.t_map_shelf.rotation[:2, :2] for s in shelves])
        self.low = np.array([[-s.size_m[0] / 2.0, 0.0] for s in shelves])
        self.high = np.array([[s.size_m[0] / 2.0, s.size_m[1]] for s in shelves])
        self.bounds_low = np.array([WALL_MARGIN_M, WALL_MARGIN_M])
        self.bounds_high = np.array(store.size_m) - WALL_MARGIN_M
        nodes = []
        for index in range(len(shelves)):
            for cx in (self.low[index, 0] - NODE_INFLATION_M,
                       self.high[index, 0] + NODE_INFLATION_M):
                for cy in (self.low[index, 1] - NODE_INFLATION_M,
                           self.high[index, 1] + NODE_INFLATION_M):
                    corner = self.rotation[index] @ [cx, cy] + self.origin[index]
                    nodes.append(np.clip(corner, self.bounds_low, self.bounds_high))
        for x in np.arange(self.bounds_low[0], self.bounds_high[0] + 1e-9, 0.75):
            for y in np.arange(self.bounds_low[1], self.bounds_high[1] + 1e-9, 0.75):
                nodes.append(np.array([x, y]))
        free = [n for n in nodes if not self.blocked(n)]
        self.nodes = np.array(free)
        count = len(self.nodes)
        i, j = np.triu_indices(count, 1)
        clear = self.segments_clear(self.nodes[i], self.nodes[j])
        lengths = np.linalg.norm(self.nodes[i] - self.nodes[j], axis=1)
        self.edges = np.full((count, count), np.inf)
        self.edges[i[clear], j[clear]] = lengths[clear]
        self.edges[j[clear], i[clear]] = lengths[clear]
        self.size = np.array(store.size_m, dtype=float)
        self.doors = {gate.gate_id: door_of(gate, store.size_m) for gate in store.gates
                      if gate.kind in ('entry', 'exit')}

    def inside(self, point: NDArray) -> bool:
        """Whether a floor point is inside the store walls."""
        return bool(np.all(point > 0.0) and np.all(point < self.size))

    def walkable(self, points: NDArray, clearance: float = BODY_CLEARANCE_M) -> NDArray:
        """Whether a pelvis may stand at each floor point (N, 2).

        It may when clear of the shelves by ``clearance`` and within the walls' margin, in
        a doorway, or outside in front of a door.
        """
        points = np.atleast_2d(np.asarray(points, dtype=float))
        local = np.einsum('nij,mni->mnj', self.rotation, points[:, None, :] - self.origin[None])
        outside = np.maximum(np.maximum(self.low[None] - local, local - self.high[None]), 0.0)
        clear = np.min(np.hypot(outside[..., 0], outside[..., 1]), axis=1) >= clearance
        ok = np.all((points >= self.bounds_low - 1e-9) & (points <= self.bounds_high + 1e-9),
                    axis=1)
        for door in self.doors.values():
            u, v = door.coordinates(points)
            doorway = (np.abs(u) <= door.half_width_m - 0.15) & (v >= -WALL_MARGIN_M - 0.05) \
                & (v <= 0.8)
            apron = (v >= 0.45) & (v <= 6.0) & (np.abs(u) <= 3.0)
            ok |= doorway | apron
        return np.asarray(ok & clear)

    def local(self, point: NDArray) -> NDArray:
        """Express a map point in every shelf frame: (shelves, 2)."""
        return np.einsum('nij,ni->nj', self.rotation, np.asarray(point)[None, :] - self.origin)

    def distance(self, point: NDArray) -> float:
        """Distance (m) from a floor point to the nearest shelf footprint (0 inside)."""
        local = self.local(point)
        outside = np.maximum(np.maximum(self.low - local, local - self.high), 0.0)
        return float(np.min(np.hypot(outside[:, 0], outside[:, 1])))

    def in_bounds(self, point: NDArray) -> bool:
        """Whether a floor point is inside the walls' margin."""
        return bool(np.all(point >= self.bounds_low - 1e-9)
                    and np.all(point <= self.bounds_high + 1e-9))

    def blocked(self, point: NDArray, inflation: float = INFLATION_M) -> bool:
        """Whether a floor point is within ``inflation`` of a footprint or out of bounds."""
        if not self.in_bounds(point):
            return True
        local = self.local(point)
        inside = np.all((local > self.low - inflation) & (local < self.high + inflation),
                        axis=1)
        return bool(np.any(inside))

    def segments_clear(self, a: NDArray, b: NDArray,
                       inflation: float = INFLATION_M - 1e-3) -> NDArray:
        """Whether segments a[k] -> b[k] miss every inflated footprint (Liang-Barsky)."""
        a = np.atleast_2d(a)
        b = np.atleast_2d(b)
        # (segments, shelves, 2) in shelf frames
        la = np.einsum('nij,mni->mnj', self.rotation, a[:, None, :] - self.origin[None])
        lb = np.einsum('nij,mni->mnj', self.rotation, b[:, None, :] - self.origin[None])
        d = lb - la
        low = self.low[None] - inflation
        high = self.high[None] + inflation
        t0 = np.zeros(la.shape[:2])
        t1 = np.ones(la.shape[:2])
        for axis in range(2):
            da = d[..., axis]
            pa = la[..., axis]
            flat = np.abs(da) < 1e-12
            safe = np.where(flat, 1.0, da)
            ta = (low[..., axis] - pa) / safe
            tb = (high[..., axis] - pa) / safe
            inside = (pa > low[..., axis]) & (pa < high[..., axis])
            tmin = np.where(flat, np.where(inside, -np.inf, np.inf), np.minimum(ta, tb))
            tmax = np.where(flat, np.where(inside, np.inf, -np.inf), np.maximum(ta, tb))
            t0 = np.maximum(t0, tmin)
            t1 = np.minimum(t1, tmax)
        hit = t0 < t1
        return np.asarray(~np.any(hit, axis=1))

    def escape(self, point: NDArray) -> NDArray:
        """Nearest point outside every inflated footprint (``point`` itself if free)."""
        p = np.clip(np.asarray(point, dtype=float), self.bounds_low, self.bounds_high)
        for _ in range(4):
            if not self.blocked(p):
                return p
            local = self.local(p)
            inside = np.flatnonzero(np.all(
                (local > self.low - INFLATION_M) & (local < self.high + INFLATION_M), axis=1))
            index = int(inside[0])
            x, y = local[index]
            lo = self.low[index] - NODE_INFLATION_M
            hi = self.high[index] + NODE_INFLATION_M
            options = sorted([(abs(x - lo[0]), (lo[0], y)), (abs(hi[0] - x), (hi[0], y)),
                              (abs(y - lo[1]), (x, lo[1])), (abs(hi[1] - y), (x, hi[1]))])
            moved = False
            for _, candidate in options:
                q = self.rotation[index] @ np.asarray(candidate) + self.origin[index]
                if self.in_bounds(q) and not self.blocked(q):
                    p = q
                    moved = True
                    break
            if not moved:
                q = self.rotation[index] @ np.asarray(options[0][1]) + self.origin[index]
                p = np.clip(q, self.bounds_low, self.bounds_high)
        return p

    def plan(self, start: NDArray, goal: NDArray) -> list[NDArray]:
        """Waypoints from start to goal around the shelves (start and goal included)."""
        start = np.asarray(start, dtype=float)
        goal = np.asarray(goal, dtype=float)
        s = self.escape(start)
        g = self.escape(goal)
        middle: list[NDArray] = []
        if not bool(self.segments_clear(s, g)[0]):
            count = len(self.nodes)
            from_s = self.segments_clear(np.repeat(s[None], count, 0), self.nodes)
            to_g = self.segments_clear(self.nodes, np.repeat(g[None], count, 0))
            dist = np.where(from_s, np.linalg.norm(self.nodes - s, axis=1), np.inf)
            previous = np.full(count, -1)
            done = np.zeros(count, dtype=bool)
            best_total, best_node = np.inf, -1
            heap: list[tuple[float, int]] = [(float(dist[k]), int(k))
                                             for k in np.flatnonzero(from_s)]
            heapq.heapify(heap)
            while heap:
                d, k = heapq.heappop(heap)
                if done[k] or d > dist[k]:
                    continue
                done[k] = True
                if to_g[k]:
                    total = d + float(np.linalg.norm(self.nodes[k] - g))
                    if total < best_total:
                        best_total, best_node = total, k
                if d >= best_total:
                    break
                candidates = d + self.edges[k]
                for n in (int(i) for i in np.flatnonzero(candidates < dist)):
                    dist[n] = candidates[n]
                    previous[n] = k
                    heapq.heappush(heap, (float(dist[n]), n))
            node = best_node
            while node >= 0:
                middle.append(self.nodes[node])
                node = int(previous[node])
            middle.reverse()
        path = [start]
        for point in (s, *middle, g, goal):
            if float(np.linalg.norm(point - path[-1])) > 1e-6:
                path.append(np.asarray(point, dtype=float))
        return path

    def random_free_point(self, rng: np.random.Generator, near: NDArray | None = None,
                          radius: tuple[float, float] = (0.0, 99.0)) -> NDArray:
        """Return a random free floor point, optionally ``radius`` away from ``near``."""
        for _ in range(200):
            p = rng.uniform(self.bounds_low, self.bounds_high)
            if self.blocked(p, NODE_INFLATION_M):
                continue
            if near is not None and not radius[0] <= float(np.linalg.norm(p - near)) \
                    <= radius[1]:
                continue
            return p
        return self.escape(near if near is not None else self.bounds_low)


# --------------------------------------------------------------------------- agents


@dataclass
class _Party:
    party_id: int
    account_id: str
    members: list[_Agent] = field(default_factory=list)
    tailgaters: list[_Agent] = field(default_factory=list)
    scan_step: Optional[int] = None
    release: dict[int, int] = field(default_factory=dict)  # person id -> step it walks on


@dataclass
class _ReachSpot:
    bin: Bin
    shelf: Shelf
    stand: NDArray
    heading: float
    target: NDArray
    side: str
    crouch: float
    lean: float


class _Agent:
    """One person in the world and its queue of actions."""

    def __init__(self, pid: int, role: str, physique: Physique, rng: np.random.Generator,
                 party: Optional[_Party], enter_step: int, spawn: NDArray,
                 heading: float) -> None:
        self.pid = pid
        self.role = role
        self.physique = physique
        self.rng = rng
        self.party = party
        self.enter_step = enter_step
        self.exit_step: Optional[int] = None
        self.present = False
        self.pos = np.asarray(spawn, dtype=float)
        self.heading = heading
        self.speed = 0.0
        self.phase = 0.0
        self.queue: deque[_Action] = deque()
        self.pending: list[_Action] = []
        self.action: Optional[_Action] = None
        self.basket: list[str] = []
        self.hand_items: dict[str, list[str]] = {'left': [], 'right': []}
        self.targets: dict[str, Optional[NDArray]] = {'left': None, 'right': None}
        self.amounts: dict[str, float] = {'left': 0.0, 'right': 0.0}
        self.crouch = 0.0
        self.lean = 0.0
        self.committed = False
        self.exiting = False
        self.tangle_planned = False
        self.velocity = np.zeros(2)            # m/s over the last step (map frame)
        self.previous_pos = self.pos.copy()
        self.entered_step: Optional[int] = None  # first step with the pelvis inside the walls
        self.entering = False                  # on the way in, up to the scan
        self.reserved_stand: Optional[NDArray] = None
        self.partners: set[int] = set()        # person ids it may touch (tangle, hand-off)

    @property
    def account_id(self) -> Optional[str]:
        return self.party.account_id if self.party is not None else None

    def others_in_party(self) -> list[_Agent]:
        if self.party is None:
            return []
        return [m for m in self.party.members if m is not self]

    def reset_arms(self) -> None:
        self.targets = {'left': None, 'right': None}
        self.amounts = {'left': 0.0, 'right': 0.0}
        self.crouch = 0.0
        self.lean = 0.0

    def turn_towards(self, heading: float) -> None:
        delta = _wrap(heading - self.heading)
        limit = TURN_RATE_RAD_S * DT_S
        self.heading = _wrap(self.heading + max(-limit, min(limit, delta)))

    def stand_still(self) -> None:
        self.speed = max(0.0, self.speed - DECEL_MPS2 * DT_S * 4.0)


class _Action:
    """One thing an agent does; ``start`` may return False to be dropped at once.

    ``mobile`` actions walk (others' separation may push them); the rest stand still and
    are not pushed by people walking past.
    """

    interruptible = False
    mobile = False

    def start(self, sim: Simulation, agent: _Agent) -> bool:
        return True

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        return True

    def interrupted(self) -> Optional[_Action]:
        """Return what goes back on the queue when interrupted (None: drop it)."""
        return None


class _Follower:
    """Moves an agent along a polyline with speed limits and smooth heading.

    Where nobody is near, the agent moves exactly along the polyline. Near other people
    ``Simulation.steer`` picks the velocity (avoiding, slowing or waiting); the agent then
    heads for the next waypoint from wherever it got to. Without progress for
    ``STUCK_REPLAN_S`` the path is planned again (``replan``), and after
    ``STUCK_GIVE_UP_S`` within ``STUCK_GIVE_UP_M`` of the goal the walk ends where it is.
    """

    def __init__(self, points: list[NDArray], replan: bool = True,
                 tolerance_m: float = 0.0) -> None:
        self.points = [np.asarray(p, dtype=float) for p in points[1:]]
        self.goal = self.points[-1] if self.points else None
        self.replan = replan
        self.tolerance_m = tolerance_m      # held up this close to the goal: arrived
        self.left_at: Optional[NDArray] = None   # where the last move left the agent
        self.steered = False
        self.best_remaining = math.inf
        self.stuck_steps = 0

    def remaining(self, agent: _Agent) -> float:
        total, previous = 0.0, agent.pos
        for point in self.points:
            total += float(np.linalg.norm(point - previous))
            previous = point
        return total

    def _passed(self, sim: Simulation, agent: _Agent) -> bool:
        """Whether the next (intermediate) waypoint is reached or already behind the agent.

        People pushed or steered past a waypoint go on to the next one when it is in
        sight, instead of turning back.
        """
        here, after = self.points[0] - agent.pos, self.points[1] - self.points[0]
        if float(np.linalg.norm(here)) < WAYPOINT_REACHED_M:
            return True
        return float(np.dot(here, after)) < 0.0 and bool(sim.geometry.segments_clear(
            agent.pos, self.points[1], BODY_CLEARANCE_M + 0.05)[0])

    def _unstick(self, sim: Simulation, agent: _Agent, remaining: float) -> bool:
        """Track progress; re-plan or give up after a standstill. True: give up now."""
        if remaining < self.best_remaining - 0.05:
            self.best_remaining = remaining
            self.stuck_steps = 0
            return False
        self.stuck_steps += 1
        if remaining < self.tolerance_m and self.stuck_steps >= STEP_HZ // 2:
            return True
        if self.replan and self.goal is not None and \
                self.stuck_steps % int(STUCK_REPLAN_S * STEP_HZ) == 0:
            self.points = [np.asarray(p, dtype=float)
                           for p in sim.geometry.plan(agent.pos, self.goal)[1:]]
        # A fixed path (through a door) is never given up far from its end: it leads out of
        # or into the walls.
        return self.replan and self.stuck_steps >= STUCK_GIVE_UP_S * STEP_HZ \
            and remaining < STUCK_GIVE_UP_M

    def move(self, sim: Simulation, agent: _Agent, pace: str) -> bool:
        """Advance one step; return True on arrival."""
        while len(self.points) > 1 and self._passed(sim, agent):
            self.points.pop(0)
        if not self.points:
            agent.stand_still()
            return True
        physique = agent.physique
        if pace == 'walk':
            cruise = physique.walk_speed_mps
        elif pace == 'browse':
            cruise = physique.browse_speed_mps
        else:
            near = sim.geometry.distance(agent.pos) < BROWSE_NEAR_SHELF_M
            cruise = physique.browse_speed_mps if near else physique.walk_speed_mps
        if self.replan and self.goal is not None and (self.steered or (
                self.left_at is not None and not np.array_equal(self.left_at, agent.pos))):
            # Off the planned polyline (steered or pushed): go on only in a straight line
            # that clears the shelves, else plan again from here.
            if not bool(sim.geometry.segments_clear(agent.pos, self.points[0],
                                                    BODY_CLEARANCE_M + 0.05)[0]):
                self.points = [np.asarray(p, dtype=float)
                               for p in sim.geometry.plan(agent.pos, self.goal)[1:]]
                if not self.points:
                    agent.stand_still()
                    return True
        remaining = self.remaining(agent)
        if self._unstick(sim, agent, remaining):
            self.points = []
            agent.speed = 0.0
            return True
        target = min(cruise, math.sqrt(2.0 * DECEL_MPS2 * remaining))
        change = max(-DECEL_MPS2 * 2.0 * DT_S, min(ACCEL_MPS2 * DT_S, target - agent.speed))
        speed = max(0.05, agent.speed + change)
        offset = self.points[0] - agent.pos
        length = float(np.linalg.norm(offset))
        preferred = offset / length * speed if length > 1e-9 else np.zeros(2)
        velocity = sim.steer(agent, preferred, length, remaining, self.stuck_steps / STEP_HZ)
        self.steered = velocity is not preferred
        moved = 0.0
        if velocity is preferred:
            # Nobody in the way: exactly along the polyline.
            travel = speed * DT_S
            while self.points and travel > 1e-12:
                offset = self.points[0] - agent.pos
                length = float(np.linalg.norm(offset))
                if length <= travel:
                    agent.pos = self.points.pop(0)
                    travel -= length
                    moved += length
                else:
                    agent.pos = agent.pos + offset / length * travel
                    moved += travel
                    travel = 0.0
            agent.speed = speed
        else:
            step = velocity * DT_S
            moved = float(np.linalg.norm(step))
            agent.pos = agent.pos + step
            agent.speed = moved / DT_S
            if float(np.linalg.norm(self.points[0] - agent.pos)) < 1e-3:
                self.points.pop(0)
        if self.points:
            direction = velocity if agent.speed > 0.2 and velocity is not preferred \
                else self.points[0] - agent.pos
            if float(np.linalg.norm(direction)) > 1e-6:
                agent.turn_towards(math.atan2(direction[1], direction[0]))
        agent.phase = (agent.phase + math.pi * moved / physique.step_length_m) % (4 * math.pi)
        self.left_at = agent.pos.copy()
        if not self.points:
            agent.speed = 0.0
            return True
        return False


class _Walk(_Action):
    interruptible = True
    mobile = True

    def __init__(self, goal: NDArray, pace: str = 'auto') -> None:
        self.goal = np.asarray(goal, dtype=float)
        self.pace = pace
        self.follower: Optional[_Follower] = None

    def start(self, sim: Simulation, agent: _Agent) -> bool:
        self.follower = _Follower(sim.geometry.plan(agent.pos, self.goal))
        return True

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        assert self.follower is not None
        return self.follower.move(sim, agent, self.pace)

    def interrupted(self) -> Optional[_Action]:
        return _Walk(self.goal, self.pace)


class _Dwell(_Action):
    interruptible = True

    def __init__(self, steps: int, heading: Optional[float] = None) -> None:
        self.steps = max(1, steps)
        self.heading = heading
        self.count = 0

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        agent.stand_still()
        if self.heading is not None:
            agent.turn_towards(self.heading)
        self.count += 1
        return self.count >= self.steps


class _Leave(_Action):
    """Walk to the gate and out (through its door and away from the store if it has one)."""

    mobile = True

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.follower: Optional[_Follower] = None
        self.out: list[NDArray] = []

    def start(self, sim: Simulation, agent: _Agent) -> bool:
        agent.exiting = True
        goal = sim.gate_point(self.gate, agent.rng)
        door = sim.geometry.doors.get(self.gate.gate_id)
        if door is not None:
            u = float(agent.rng.uniform(-0.5, 0.5)) * (door.half_width_m - 0.2)
            goal = sim.geometry.escape(door.point(u, -0.5))
            self.out = [door.point(u, -0.2), door.point(u, 0.6),
                        door.point(2.0 * u, OUTSIDE_END_M)]
        # Near the gate any point will do: people leaving together do not queue for one.
        self.follower = _Follower(sim.geometry.plan(agent.pos, goal), tolerance_m=0.7)
        return True

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        assert self.follower is not None
        if self.follower.move(sim, agent, 'auto'):
            if self.out:
                # Through the door: a fixed path (the planner keeps inside the walls).
                self.follower = _Follower([agent.pos, *self.out], replan=False,
                                          tolerance_m=0.5)
                self.out = []
                return False
            sim.remove(agent)
            return True
        return False


class _WalkPath(_Action):
    """Walk a fixed polyline (outside the store and through a door): no re-planning."""

    mobile = True

    def __init__(self, points: Sequence[NDArray], tolerance_m: float = 0.3) -> None:
        self.points = [np.asarray(p, dtype=float) for p in points]
        self.tolerance_m = tolerance_m
        self.follower: Optional[_Follower] = None

    def start(self, sim: Simulation, agent: _Agent) -> bool:
        self.follower = _Follower([agent.pos, *self.points], replan=False,
                                  tolerance_m=self.tolerance_m)
        return True

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        assert self.follower is not None
        return self.follower.move(sim, agent, 'walk')


class _EntryTurn(_Action):
    """Wait outside the entry door until the party before has scanned and walked on."""

    def __init__(self, party: _Party) -> None:
        self.party = party
        self.count = 0

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        agent.stand_still()
        self.count += 1
        return sim.entry_turn(self.party) or self.count > 30 * STEP_HZ


class _Scan(_Action):
    """The party's QR holder stands at the entry scanner; the scan comes a moment later."""

    def __init__(self, party: _Party, heading: float) -> None:
        self.party = party
        self.heading = heading

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        agent.stand_still()
        agent.turn_towards(self.heading)
        if self.party.scan_step is None:
            sim.schedule_scan(self.party)
        if sim.step >= self.party.release[agent.pid]:
            agent.entering = False
            return True
        return False


class _AwaitScan(_Action):
    """A companion (or a tailgater) waits behind the QR holder until the scan, then goes."""

    def __init__(self, party: _Party, heading: float) -> None:
        self.party = party
        self.heading = heading
        self.count = 0

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        agent.stand_still()
        agent.turn_towards(self.heading)
        self.count += 1
        release = self.party.release.get(agent.pid)
        if (release is not None and sim.step >= release) or self.count > 45 * STEP_HZ:
            agent.entering = False
            return True
        return False


@dataclass
class _Sync:
    """Two shoppers reaching into the same shelf at overlapping times."""

    participants: list[_Agent]
    created_step: int
    ready: set[int] = field(default_factory=set)
    go_step: Optional[int] = None
    cancelled: bool = False
    windows: dict[int, tuple[int, int]] = field(default_factory=dict)
    timeout_steps: int = 20 * STEP_HZ


class _Reach(_Action):
    """Reach into a bin: pick, return, restock or touch (the hand goes into the bin box).

    A touch takes nothing: the hand presses, or lifts a unit and puts it straight back.
    """

    def __init__(self, kind: str, spot: _ReachSpot, sku: str, quantity: int,
                 behaviours: Sequence[str] = (), sync: Optional[_Sync] = None,
                 pick_event: Optional[dict[str, Any]] = None,
                 decide_after: bool = False) -> None:
        self.kind = kind
        self.spot = spot
        self.sku = sku
        self.quantity = quantity
        self.behaviours = list(behaviours)
        self.sync = sync
        self.had_sync = sync is not None
        self.pick_event = pick_event
        self.decide_after = decide_after
        self.state = 'new'
        self.k0 = 0
        self.steps = 0
        self.event: Optional[dict[str, Any]] = None
        self.waited = 0
        self.walks = 0
        self.held_steps: Optional[tuple[int, int]] = None   # a touch's lifted unit in hand
        self.holding = False

    def start(self, sim: Simulation, agent: _Agent) -> bool:
        if float(np.linalg.norm(agent.pos - self.spot.stand)) > 0.03:
            self.walks += 1
            if self.walks > 1 and not sim.retarget_reach(agent, self):
                return False
            agent.queue.appendleft(self)
            agent.queue.appendleft(_Walk(self.spot.stand, 'browse'))
            return False
        if self.sync is not None and not self.sync.cancelled:
            self.sync.ready.add(agent.pid)
            self.state = 'wait'
        else:
            self.sync = None
            self._go(sim, agent, sim.step + 1)
        return True

    def _go(self, sim: Simulation, agent: _Agent, k0: int) -> None:
        self.k0 = k0
        if self.kind == 'restock':
            seconds = agent.rng.uniform(3.0, 4.5)
        elif self.kind == 'touch':
            seconds = agent.rng.uniform(2.5, 4.0)    # contact 1.0-1.6 s: lift, look, put back
        else:
            seconds = agent.rng.uniform(1.5, 2.4)
        self.steps = int(round(seconds * STEP_HZ))
        self.state = 'go'
        if self.k0 + self.steps >= sim.total_steps:
            self.state = 'skip'
            return
        self.event = sim.schedule_reach(agent, self)
        if self.event is None:
            self.state = 'skip'

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        agent.stand_still()
        agent.turn_towards(self.spot.heading)
        if self.state == 'wait':
            assert self.sync is not None
            self.waited += 1
            sync = self.sync
            if sync.go_step is None and len(sync.ready) == len(sync.participants):
                sync.go_step = sim.step + 6
            if sync.go_step is not None:
                offset = 0 if agent is sync.participants[0] else int(agent.rng.integers(0, 25))
                self.behaviours.append('shared_reach')
                self._go(sim, agent, sync.go_step + offset)
            elif self.waited > sync.timeout_steps or sync.cancelled:
                sync.cancelled = True
                self.sync = None
                self._go(sim, agent, sim.step + 1)
            if self.state == 'skip':
                agent.committed = False
                return True
            return False
        if self.state == 'skip':
            if self.had_sync:
                agent.committed = False
            return True
        fraction = (sim.step - self.k0) / self.steps
        if fraction < 0.0:
            return False
        amount = _envelope(fraction, 0.4, 0.6)
        side = self.spot.side
        agent.targets[side] = self.spot.target
        agent.amounts[side] = amount
        agent.crouch = self.spot.crouch * amount
        agent.lean = self.spot.lean * amount
        if self.held_steps is not None:
            holding = self.held_steps[0] <= sim.step < self.held_steps[1]
            if holding != self.holding:
                if holding:
                    agent.hand_items[side].append(self.sku)
                elif self.sku in agent.hand_items[side]:
                    agent.hand_items[side].remove(self.sku)
                self.holding = holding
        if fraction >= 1.0:
            agent.reset_arms()
            for _ in range(len(agent.hand_items[side])):
                agent.basket.append(agent.hand_items[side].pop())
            if self.had_sync:
                agent.committed = False
            if self.decide_after and self.event is not None:
                sim.after_pick(agent, self)
            return True
        return False


@dataclass
class _HandOff:
    giver: _Agent
    receiver: _Agent
    sku: str
    pick_event: dict[str, Any]
    created_step: int
    receiver_ready: bool = False
    go_step: Optional[int] = None
    steps: int = 72
    cancelled: bool = False
    done: bool = False
    midpoint: Optional[NDArray] = None


class _GiveApproach(_Action):
    """The giver walks up to the receiver (re-planning as the receiver moves)."""

    mobile = True

    def __init__(self, handoff: _HandOff) -> None:
        self.handoff = handoff
        self.follower: Optional[_Follower] = None
        self.count = 0

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        h = self.handoff
        receiver = h.receiver
        self.count += 1
        if h.cancelled or not receiver.present or self.count > 30 * STEP_HZ:
            h.cancelled = True
            agent.committed = False
            receiver.committed = False
            agent.stand_still()
            return True
        gap = float(np.linalg.norm(receiver.pos - agent.pos))
        arrived = self.follower is not None and not self.follower.points
        if h.receiver_ready and (gap <= 0.55 or (arrived and gap <= 1.0)):
            agent.stand_still()
            return True
        if gap <= 0.55:
            agent.stand_still()
            return False
        if self.follower is None or self.count % STEP_HZ == 0:
            goal = sim.meeting_point(receiver.pos, agent.pos, 0.42)
            self.follower = _Follower(sim.geometry.plan(agent.pos, goal))
        self.follower.move(sim, agent, 'browse')
        return False


class _GiveItem(_Action):
    """The giver hands the item over (both hands meet between the two)."""

    def __init__(self, handoff: _HandOff) -> None:
        self.handoff = handoff

    def start(self, sim: Simulation, agent: _Agent) -> bool:
        h = self.handoff
        if h.cancelled or not h.receiver.present or h.sku not in agent.basket:
            h.cancelled = True
            agent.committed = False
            h.receiver.committed = False
            return False
        agent.basket.remove(h.sku)
        agent.hand_items['right'].append(h.sku)
        middle = (agent.pos + h.receiver.pos) / 2.0
        h.midpoint = np.array([middle[0], middle[1], 0.55 * min(
            agent.physique.height_m, h.receiver.physique.height_m)])
        h.go_step = sim.step + 1
        sim.record_hand_off(h)
        return True

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        h = self.handoff
        assert h.go_step is not None and h.midpoint is not None
        agent.stand_still()
        gap = h.receiver.pos - agent.pos
        agent.turn_towards(math.atan2(gap[1], gap[0]))
        fraction = (sim.step - h.go_step) / h.steps
        agent.targets['right'] = h.midpoint
        agent.amounts['right'] = _envelope(fraction, 0.45, 0.55)
        if fraction >= 0.5 and h.sku in agent.hand_items['right']:
            agent.hand_items['right'].remove(h.sku)
            h.receiver.hand_items['right'].append(h.sku)
        if fraction >= 1.0:
            agent.reset_arms()
            h.done = True
            return True
        return False


class _ReceiveWait(_Action):
    """The receiver stops, turns to the giver and takes the item."""

    def __init__(self, handoff: _HandOff) -> None:
        self.handoff = handoff
        self.count = 0

    def start(self, sim: Simulation, agent: _Agent) -> bool:
        self.handoff.receiver_ready = True
        return True

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        h = self.handoff
        agent.stand_still()
        self.count += 1
        gap = h.giver.pos - agent.pos
        if float(np.linalg.norm(gap)) > 1e-3:
            agent.turn_towards(math.atan2(gap[1], gap[0]))
        if h.cancelled or (h.go_step is None and self.count > 35 * STEP_HZ):
            h.cancelled = True
            agent.committed = False
            return True
        if h.go_step is None or h.midpoint is None:
            return False
        fraction = (sim.step - h.go_step) / h.steps
        agent.targets['right'] = h.midpoint
        agent.amounts['right'] = _envelope(fraction, 0.45, 0.55)
        if fraction >= 1.0:
            agent.reset_arms()
            for _ in range(len(agent.hand_items['right'])):
                agent.basket.append(agent.hand_items['right'].pop())
            agent.committed = False
            h.giver.committed = False
            return True
        return False


@dataclass
class _Tangle:
    leader: _Agent          # walks its detour; the follower walks in contact with it
    follower: _Agent
    created_step: int
    side: float = 1.0
    leader_ready: bool = False
    joined: bool = False
    cancelled: bool = False
    contact_steps: int = 0
    first_contact: Optional[int] = None     # of the current run of contact
    last_contact: Optional[int] = None
    longest: tuple[int, int] = (0, -1)      # the longest run of contact (first, last step)
    detour: Optional[_Walk] = None


class _TangleWait(_Action):
    """The leader waits for the follower to come up beside it."""

    def __init__(self, tangle: _Tangle) -> None:
        self.tangle = tangle
        self.count = 0

    def start(self, sim: Simulation, agent: _Agent) -> bool:
        self.tangle.leader_ready = True
        return True

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        agent.stand_still()
        self.count += 1
        if self.tangle.joined:
            return True
        if self.tangle.cancelled or self.count > 25 * STEP_HZ:
            self.tangle.cancelled = True
            agent.committed = False
            return True
        return False


class _TangleApproach(_Action):
    """The follower walks up to the waiting leader."""

    mobile = True

    def __init__(self, tangle: _Tangle) -> None:
        self.tangle = tangle
        self.follower: Optional[_Follower] = None
        self.count = 0

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        tangle = self.tangle
        leader = tangle.leader
        self.count += 1
        if tangle.cancelled or not leader.present or self.count > 25 * STEP_HZ:
            tangle.cancelled = True
            agent.committed = False
            leader.committed = False
            agent.stand_still()
            return True
        gap = float(np.linalg.norm(leader.pos - agent.pos))
        if gap <= 0.6 and tangle.leader_ready:
            tangle.joined = True
            agent.stand_still()
            return True
        if gap <= 0.6:
            agent.stand_still()
            return False
        if self.follower is None or self.count % STEP_HZ == 0:
            goal = sim.meeting_point(leader.pos, agent.pos, 0.45)
            self.follower = _Follower(sim.geometry.plan(agent.pos, goal))
        self.follower.move(sim, agent, 'auto')
        return False


class _TangleFollow(_Action):
    """The follower walks in contact with the leader (~0.3 m) for a few seconds."""

    mobile = True

    def __init__(self, tangle: _Tangle, steps: int) -> None:
        self.tangle = tangle
        self.steps = steps
        self.count = 0

    def start(self, sim: Simulation, agent: _Agent) -> bool:
        if self.tangle.cancelled:
            agent.committed = False
            return False
        return True

    def _target(self, sim: Simulation, side: float) -> NDArray:
        leader = self.tangle.leader
        forward = np.array([math.cos(leader.heading), math.sin(leader.heading)])
        left = np.array([-forward[1], forward[0]])
        return leader.pos - 0.12 * forward + side * 0.29 * left

    def step(self, sim: Simulation, agent: _Agent) -> bool:
        tangle = self.tangle
        leader = tangle.leader
        self.count += 1
        walking = leader.action is tangle.detour and leader.present
        if not walking and self.count > 2 * STEP_HZ:
            return self._finish(sim, agent)
        target = self._target(sim, tangle.side)
        if sim.geometry.distance(target) < BODY_CLEARANCE_M + 0.05:
            tangle.side = -tangle.side
            target = self._target(sim, tangle.side)
        offset = target - agent.pos
        length = float(np.linalg.norm(offset))
        limit = FOLLOW_MAX_SPEED_MPS * DT_S
        new = agent.pos + (offset if length <= limit else offset / length * limit)
        if sim.geometry.distance(new) >= BODY_CLEARANCE_M and sim.geometry.in_bounds(new):
            moved = float(np.linalg.norm(new - agent.pos))
            agent.pos = new
            agent.speed = moved / DT_S
            agent.phase = (agent.phase + math.pi * moved / agent.physique.step_length_m) \
                % (4 * math.pi)
        else:
            agent.stand_still()
        agent.turn_towards(leader.heading)
        if float(np.linalg.norm(leader.pos - agent.pos)) < TANGLE_CONTACT_M and walking:
            tangle.contact_steps += 1
            # A run of contact survives breaks of up to 0.2 s (a stride, a sidestep).
            if tangle.first_contact is None or tangle.last_contact is None or \
                    sim.step - tangle.last_contact > STEP_HZ // 5:
                tangle.first_contact = sim.step
            tangle.last_contact = sim.step
            if tangle.last_contact - tangle.first_contact > \
                    tangle.longest[1] - tangle.longest[0]:
                tangle.longest = (tangle.first_contact, tangle.last_contact)
        if self.count >= self.steps:
            return self._finish(sim, agent)
        return False

    def _finish(self, sim: Simulation, agent: _Agent) -> bool:
        agent.speed = min(agent.speed, agent.physique.browse_speed_mps)
        agent.committed = False
        self.tangle.leader.committed = False
        sim.record_tangle(self.tangle)
        return True


class _ShopItem(_Action):
    """One line of a shopping list: walk to the bin, browse, reach and pick."""

    def __init__(self, bin_: Bin, sku: str, quantity: int) -> None:
        self.bin = bin_
        self.sku = sku
        self.quantity = quantity

    def start(self, sim: Simulation, agent: _Agent) -> bool:
        spot = sim.reach_spot(agent, self.bin)
        if spot is None:
            return False
        dwell_s = float(agent.rng.uniform(*sim.scenario.shoppers.dwell_s))
        exit_gate = sim.exit_gate
        estimate_s = (float(np.linalg.norm(spot.stand - agent.pos)) * 1.4
                      / agent.physique.browse_speed_mps + dwell_s + 3.0
                      + sim.exit_estimate_s(spot.stand, exit_gate) + 2.0)
        if sim.step + estimate_s * STEP_HZ > sim.total_steps - STEP_HZ:
            # Out of time: skip the rest of the list.
            while agent.queue and isinstance(agent.queue[0], _ShopItem):
                agent.queue.popleft()
            return False
        sync = sim.maybe_shared_reach(agent, spot)
        pick = _Reach('pick', spot, self.sku, self.quantity, sync=sync,
                      decide_after=sync is None)
        for action in reversed(sim.with_touch(spot, pick)):
            agent.queue.appendleft(action)
        agent.queue.appendleft(_Dwell(int(dwell_s * STEP_HZ), spot.heading))
        agent.queue.appendleft(_Walk(spot.stand))
        return False


class _AssociateLoop(_Action):
    """An associate waits near the staff door and restocks bins now and then."""

    def start(self, sim: Simulation, agent: _Agent) -> bool:
        staff = sim.staff_gate
        leave_at = sim.total_steps - int((sim.exit_estimate_s(agent.pos, staff) + 12.0)
                                         * STEP_HZ)
        rate = sim.scenario.behaviours.restock
        wait_steps = int(agent.rng.exponential(60.0 / rate) * STEP_HZ) if rate > 0 \
            else sim.total_steps
        if sim.step + wait_steps + 12 * STEP_HZ >= leave_at:
            agent.queue.appendleft(_Leave(staff))
            if sim.step < leave_at:
                agent.queue.appendleft(_Dwell(leave_at - sim.step))
            return False
        bins = [b for shelf in sim.store.shelves for b in shelf.bins]
        bin_ = bins[int(agent.rng.integers(len(bins)))]
        sku = bin_.skus[int(agent.rng.integers(len(bin_.skus)))]
        unit = sim.store.product(sku).unit_weight_g
        room = int((sim.max_bin_load_g - sim.bin_load_g(bin_.bin_id)) // unit)
        quantity = min(int(agent.rng.integers(2, 7)), room)
        agent.queue.appendleft(_AssociateLoop())
        spot = sim.reach_spot(agent, bin_)
        if spot is not None and quantity >= 1:
            agent.queue.appendleft(_Reach('restock', spot, sku, quantity))
        agent.queue.appendleft(_Dwell(wait_steps))
        agent.queue.appendleft(_Walk(sim.idle_point(agent)))
        return False


# --------------------------------------------------------------------------- simulation


class Simulation:
    """The store world of one scenario; ``run()`` yields ticks, then ``truth`` is complete."""

    def __init__(self, scenario: Scenario, store: StoreDescription,
                 signing_key: Any = None) -> None:
        """Check the scenario against the store and prepare the check-in token issuer.

        ``signing_key`` (an Ed25519 private key) signs check-in tokens; by default the
        demo key is read from ``scenario.check_in_key_path`` or the package's
        ``config/demo_keys/store_app_private.pem``.
        """
        self.scenario = scenario
        self.store = store
        for camera in store.cameras:
            if scenario.render.camera_fps > camera.model.fps + 1e-9:
                raise ValueError(
                    f'{scenario.source_path or scenario.name}: render.camera_fps '
                    f'{scenario.render.camera_fps} exceeds camera {camera.camera_id} '
                    f'({camera.model.name}) at {camera.model.fps} fps')
        if not store.gates_of_kind('entry') or not store.gates_of_kind('exit'):
            raise ValueError('store: needs an entry and an exit gate')
        if scenario.associates.count > 0 and not store.gates_of_kind('staff'):
            raise ValueError('associates.count: the store has no staff gate')
        self.geometry = Geometry(store)
        self.issuer = TokenIssuer(signing_key if signing_key is not None
                                  else load_private_key(self._key_path()))
        self.total_steps = int(round(scenario.duration_s * STEP_HZ))
        self.start_ns = scenario.start_ns
        self.entry_gate = store.gates_of_kind('entry')[0]
        self.exit_gate = store.gates_of_kind('exit')[0]
        staff = store.gates_of_kind('staff')
        self.staff_gate = staff[0] if staff else self.entry_gate
        self.max_bin_load_g = 15_000.0
        self.step = 0
        self.truth = self._empty_truth()

    def _key_path(self) -> pathlib.Path:
        """Find the demo signing key of check-in tokens."""
        if self.scenario.check_in_key_path:
            return pathlib.Path(self.scenario.check_in_key_path)
        candidates = []
        if self.scenario.source_path:
            candidates.append(pathlib.Path(self.scenario.source_path).resolve().parent.parent
                              / DEFAULT_KEY)
        candidates.append(pathlib.Path(__file__).resolve().parents[3] / 'config' / DEFAULT_KEY)
        for path in candidates:
            if path.is_file():
                return path
        raise ValueError(f'check_in_key: no demo signing key found at '
                         f'{", ".join(str(c) for c in candidates)}; set check_in_key')

    def _empty_truth(self) -> Truth:
        fps = self.scenario.render.camera_fps
        return Truth(scenario=self.scenario.name, seed=self.scenario.seed,
                     store=self.store.name, start_ns=self.start_ns, end_ns=self.start_ns,
                     frame_period_ns=int(round(1e9 / fps)),
                     behaviour_counts={name: 0 for name in BEHAVIOURS})

    # ----------------------------------------------------------------- set-up

    def _rng(self, *stream: int) -> np.random.Generator:
        return np.random.default_rng([self.scenario.seed, *stream])

    def _reset(self) -> None:
        scenario = self.scenario
        self.step = 0
        self.rng = self._rng(0)
        self.bins = self.store.bins()
        self.shelf_of_bin = {b.bin_id: s for s in self.store.shelves for b in s.bins}
        self.sku_bins: dict[str, list[Bin]] = {}
        for bin_ in self.bins.values():
            for sku in bin_.skus:
                self.sku_bins.setdefault(sku, []).append(bin_)
        stock_rng = self._rng(5)
        self.stock: dict[str, dict[str, int]] = {}
        self.tare_g: dict[str, float] = {}
        for bin_id, bin_ in self.bins.items():
            self.tare_g[bin_id] = float(stock_rng.uniform(600.0, 2400.0))
            cap = 12_000.0 / len(bin_.skus)
            self.stock[bin_id] = {}
            for sku in bin_.skus:
                unit = self.store.product(sku).unit_weight_g
                self.stock[bin_id][sku] = min(int(stock_rng.integers(8, 16)), int(cap // unit))
        # Every physical unit has its own weight (bin -> SKU -> grams, the front unit
        # first): picks take the front unit, returns put the same unit back at the front,
        # restocks add new units at the back.
        self.unit_rng = self._rng(6)
        self.units: dict[str, dict[str, list[float]]] = {
            bin_id: {sku: draw_unit_weights(
                self.unit_rng, self.store.product(sku).unit_weight_g,
                self.store.product(sku).weight_tolerance_g, count)
                for sku, count in counts.items()}
            for bin_id, counts in self.stock.items()}
        self.touch_rng = self._rng(7)
        self.touches: list[dict[str, Any]] = []
        sensors = scenario.sensors
        self.loadcells = LoadCellArray(
            [(s.shelf_id, [b.bin_id for b in s.bins]) for s in self.store.shelves],
            {b: self.bin_load_g(b) + self.tare_g[b] for b in self.bins},
            LoadCellConfig(noise_g=sensors.load_cell_noise_g,
                           drift_g_per_min=sensors.load_cell_drift_g_per_min,
                           spike_rate_per_min=sensors.load_cell_spike_rate_per_min),
            self._rng(2))
        self.drop_rng = self._rng(3)
        self.token_rng = self._rng(4)
        self.agents: list[_Agent] = []
        self.parties: list[_Party] = []
        self.arrivals: dict[int, list[_Agent]] = {}
        self.check_ins_at: dict[int, list[tuple[_Party, list[_Agent]]]] = {}
        self.events: list[dict[str, Any]] = []
        self.episodes: list[TruthEpisode] = []
        self.frames: list[TruthFrame] = []
        self.check_in_truth: list[TruthCheckIn] = []
        self.syncs: list[_Sync] = []
        self.sensor_counts = {'camera_frames': 0, 'camera_frames_dropped': 0,
                              'camera_frames_outage': 0,
                              'load_cell_batches': 0, 'load_cell_spikes': 0}
        self.cameras = CameraRig(
            [c.camera_id for c in self.store.cameras], CameraTimingConfig(
                frame_drop=sensors.camera_frame_drop,
                drop_burst_frames=sensors.camera_drop_burst_frames,
                clock_offset_ms=sensors.camera_clock_offset_ms,
                clock_drift_ppm=sensors.camera_clock_drift_ppm,
                latency_ms=sensors.camera_latency_ms,
                latency_jitter_ms=sensors.camera_latency_jitter_ms,
                capture_phase=sensors.camera_capture_phase,
                outage_rate_per_min=scenario.behaviours.camera_outage,
                outage_s=sensors.camera_outage_s),
            scenario.render.camera_fps, self.start_ns, self.total_steps, self.drop_rng)
        self._plan_arrivals()

    def _plan_arrivals(self) -> None:
        scenario = self.scenario
        rng = self.rng
        count = scenario.shoppers.count
        gaps = rng.exponential(60.0 / scenario.shoppers.arrival_rate_per_min, count)
        times = float(rng.uniform(0.5, 3.0)) + np.concatenate([[0.0], np.cumsum(gaps)[:-1]])
        times = times[:count]
        latest = 0.55 * scenario.duration_s
        if count and times[-1] > latest:
            first = min(float(times[0]), 0.5 * latest)
            span = float(times[-1] - times[0])
            times = first + (times - times[0]) * ((latest - first) / span if span > 0 else 0.0)
        pid = 0
        tailgate_rng = self._rng(6)
        entry_door = self.entry_gate.gate_id in self.geometry.doors
        for index, t_s in enumerate(times):
            size = 1
            if rng.random() < scenario.behaviours.group_entry:
                size = 3 if rng.random() < 0.35 else 2
            party = _Party(index + 1, f'acct_{index + 1:04d}')
            self.parties.append(party)
            step = int(round(t_s * STEP_HZ))
            member_step = step
            for member in range(size):
                pid += 1
                member_step = step + int(round(member * rng.uniform(0.7, 1.2) * STEP_HZ))
                agent = self._new_agent(pid, 'shopper', party, member_step, self.entry_gate)
                party.members.append(agent)
                if entry_door:
                    self._plan_entry(agent, party, member == 0, member - 1)
                self._plan_shopping(agent)
            if not entry_door:
                self.check_ins_at.setdefault(step, []).append((party, list(party.members)))
            elif tailgate_rng.random() < scenario.behaviours.tailgating:
                # Someone without an account walks in right behind the party's scan.
                pid += 1
                follow_step = member_step + int(round(tailgate_rng.uniform(0.6, 1.2)
                                                      * STEP_HZ))
                tailgater = self._new_agent(pid, 'shopper', None, follow_step, self.entry_gate)
                party.tailgaters.append(tailgater)
                self._plan_entry(tailgater, party, False, size - 1)
                self._plan_shopping(tailgater)
        for _ in range(scenario.associates.count):
            pid += 1
            step = int(round(rng.uniform(1.0, 10.0) * STEP_HZ))
            agent = self._new_agent(pid, 'associate', None, step, self.staff_gate)
            agent.queue.append(_AssociateLoop())

    def _new_agent(self, pid: int, role: str, party: Optional[_Party], step: int,
                   gate: Gate) -> _Agent:
        rng = self._rng(1, pid)
        spawn = self.gate_point(gate, rng)
        centre = np.array(self.store.size_m) / 2.0
        heading = math.atan2(centre[1] - spawn[1], centre[0] - spawn[0])
        uniform = self.scenario.associates.uniform_rgb if role == 'associate' else None
        agent = _Agent(pid, role, sample_physique(rng, uniform), rng, party, step, spawn,
                       heading)
        agent.tangle_planned = role == 'shopper' and \
            rng.random() < self.scenario.behaviours.tangled
        self.agents.append(agent)
        self.arrivals.setdefault(step, []).append(agent)
        return agent

    def _plan_shopping(self, agent: _Agent) -> None:
        rng = agent.rng
        low, high = self.scenario.shoppers.list_size
        size = int(rng.integers(low, high + 1))
        skus = sorted(self.sku_bins)
        chosen = [skus[int(i)] for i in rng.choice(len(skus), size=min(size, len(skus)),
                                                      replace=False)]
        stops = []
        for sku in chosen:
            options = self.sku_bins[sku]
            bin_ = options[int(rng.integers(len(options)))]
            quantity = 2 if rng.random() < 0.1 else 1
            stops.append((bin_, sku, quantity))
        # Visit in nearest-neighbour order from the entry.
        position = self.gate_point(self.entry_gate, rng)
        ordered = []
        while stops:
            distances = [float(np.linalg.norm(self._bin_floor(b) - position)) for b, _, _ in stops]
            nearest = stops.pop(int(np.argmin(distances)))
            ordered.append(nearest)
            position = self._bin_floor(nearest[0])
        for bin_, sku, quantity in ordered:
            agent.queue.append(_ShopItem(bin_, sku, quantity))
        agent.queue.append(_Leave(self.exit_gate))

    def _bin_floor(self, bin_: Bin) -> NDArray:
        shelf = self.shelf_of_bin[bin_.bin_id]
        centre = bin_.center_m()
        return shelf.t_map_shelf.apply([centre[0], -0.3, 0.0])[:2]

    # ----------------------------------------------------------------- helpers

    def gate_point(self, gate: Gate, rng: np.random.Generator) -> NDArray:
        """Return a random free floor point inside a gate zone (within the walls' margin)."""
        low = np.clip(np.array(gate.min_m), self.geometry.bounds_low, self.geometry.bounds_high)
        high = np.clip(np.array(gate.max_m), self.geometry.bounds_low,
                       self.geometry.bounds_high)
        for _ in range(50):
            p = rng.uniform(low, high)
            if not self.geometry.blocked(p):
                return p
        return self.geometry.escape((low + high) / 2.0)

    def exit_estimate_s(self, position: NDArray, gate: Gate) -> float:
        """Estimate generously the time to walk from a point to a gate (s) and out."""
        centre = (np.array(gate.min_m) + np.array(gate.max_m)) / 2.0
        door_s = 3.0 if gate.gate_id in self.geometry.doors else 0.0
        return 1.5 * float(np.linalg.norm(centre - position)) / 0.8 + 2.0 + door_s

    def meeting_point(self, other: NDArray, me: NDArray, gap_m: float) -> NDArray:
        """Return a free floor point ``gap_m`` from ``other`` on my side (to walk up to it)."""
        gap = float(np.linalg.norm(me - other))
        direction = (me - other) / gap if gap > 1e-6 else np.array([1.0, 0.0])
        goal = other + gap_m * direction
        if self.geometry.distance(goal) < BODY_CLEARANCE_M + 0.1 \
                or not self.geometry.in_bounds(goal):
            goal = self.geometry.escape(goal)
        return goal

    def idle_point(self, agent: _Agent) -> NDArray:
        """Where an associate waits: a free point near the staff gate."""
        centre = (np.array(self.staff_gate.min_m) + np.array(self.staff_gate.max_m)) / 2.0
        return self.geometry.random_free_point(agent.rng, centre, (0.3, 1.5))

    def bin_load_g(self, bin_id: str) -> float:
        """Weight of the units in a bin (g), without the tare (reaches scheduled included)."""
        return float(sum(sum(weights) for weights in self.units[bin_id].values()))

    def reach_spot(self, agent: _Agent, bin_: Bin, avoid_x: Optional[float] = None
                   ) -> Optional[_ReachSpot]:
        """Where to stand and where the hand goes to reach into a bin; None if no spot."""
        shelf = self.shelf_of_bin[bin_.bin_id]
        physique = agent.physique
        rng = agent.rng
        pose = shelf.t_map_shelf
        forward = pose.rotation[:2, 1]
        heading = math.atan2(forward[1], forward[0])
        low, high = np.asarray(bin_.min_m), np.asarray(bin_.max_m)
        for attempt in range(30):
            x_low, x_high = low[0] + 0.08, high[0] - 0.08
            if avoid_x is not None:
                options = [(x_low, min(x_high, avoid_x - 0.6)),
                           (max(x_low, avoid_x + 0.6), x_high)]
                options = [o for o in options if o[0] < o[1]]
                if not options:
                    return None
                x_low, x_high = options[int(rng.integers(len(options)))]
            x = float(rng.uniform(x_low, x_high)) if x_low < x_high else float(
                (low[0] + high[0]) / 2.0)
            y = float(min(low[1] + rng.uniform(0.06, 0.14), (low[1] + high[1]) / 2.0))
            z = float(min(low[2] + rng.uniform(0.08, 0.16), (low[2] + high[2]) / 2.0))
            side = 'left' if rng.random() < 0.5 else 'right'
            sign = 1.0 if side == 'left' else -1.0
            stand_local = [x + sign * physique.shoulder_width_m / 2.0 * rng.uniform(0.3, 1.0),
                           -rng.uniform(0.28, 0.34), 0.0]
            stand = pose.apply(stand_local)[:2]
            if self.geometry.distance(stand) < BODY_CLEARANCE_M + 0.1 \
                    or not self.geometry.in_bounds(stand):
                continue
            if attempt < 20 and self.stand_taken(agent, stand):
                continue
            target = pose.apply([x, y, z])
            body = to_body_frame(target, float(stand[0]), float(stand[1]), heading)
            try:
                crouch, lean = reach_posture(physique, body, side)
            except ValueError:
                continue
            agent.reserved_stand = stand
            return _ReachSpot(bin_, shelf, stand, heading, target, side, crouch, lean)
        return None

    # ----------------------------------------------------------------- crowd motion

    def partnered(self, a: _Agent, b: _Agent) -> bool:
        """Whether two people are meant to touch now (tangle, hand-off, shared reach)."""
        return (b.pid in a.partners or a.pid in b.partners) and (a.committed or b.committed)

    @staticmethod
    def mobile(agent: _Agent) -> bool:
        """Whether an agent is walking (standing people are not pushed by passers-by)."""
        return agent.action is None or agent.action.mobile

    def _crowd_snapshot(self) -> None:
        """Positions and velocities of everyone present at the start of a step."""
        self.crowd_agents = [a for a in self.agents if a.present]
        self.crowd_pos = np.array([a.pos for a in self.crowd_agents]).reshape(-1, 2)
        self.crowd_vel = np.array([a.velocity for a in self.crowd_agents]).reshape(-1, 2)

    def steer(self, agent: _Agent, preferred: NDArray, waypoint_m: float,
              remaining_m: float, stuck_s: float = 0.0) -> NDArray:
        """Choose this step's velocity (m/s): ``preferred`` itself when nobody is in the way.

        Sampled velocity obstacles: candidate velocities around the preferred one (turned
        up to 100 degrees, at 100/60/30 % speed, or standing) are scored by their deviation
        from it plus ``AVOID_WEIGHT`` * speed / time to collision with each neighbour
        within ``AVOID_HORIZON_S`` (neighbours keep their last velocity; the gap is
        ``COMFORT_GAP_M``, ``HARD_GAP_M`` on the last metre, ``PARTNER_GAP_M`` between
        partners) and a small bias for dodging right; candidates whose point 0.4 s ahead
        is not walkable are dropped. After ``stuck_s`` without progress, slow candidates
        cost more (``IMPATIENCE_PER_S``), so that people step around someone standing in
        the way rather than wait for ever. Deterministic: no randomness. Others are seen
        where they were at the start of the step.
        """
        speed = float(np.linalg.norm(preferred))
        if speed < 1e-9 or not len(self.crowd_pos):
            return preferred
        offset = self.crowd_pos - agent.pos
        close = np.flatnonzero(np.max(np.abs(offset), axis=1) < NEIGHBOUR_RANGE_M)
        near = [self.crowd_agents[int(k)] for k in close
                if self.crowd_agents[int(k)] is not agent]
        if not near:
            return preferred
        keep = [int(k) for k in close if self.crowd_agents[int(k)] is not agent]
        relative = offset[keep]
        velocities = self.crowd_vel[keep]
        stranger_gap = HARD_GAP_M if remaining_m < 1.0 else COMFORT_GAP_M
        gaps = np.array([PARTNER_GAP_M if self.partnered(agent, other) else stranger_gap
                         for other in near])
        if _time_to_collision(preferred[None, :], relative, velocities, gaps)[0] \
                > AVOID_HORIZON_S:
            return preferred
        base = math.atan2(preferred[1], preferred[0])
        angles = base + _STEER_ANGLES
        velocity = np.concatenate([
            preferred[None, :], np.zeros((1, 2)),
            speed * _STEER_FACTORS[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)])
        offsets = np.concatenate([[0.0, 0.0], _STEER_OFFSETS])
        first = _time_to_collision(velocity, relative, velocities, gaps)
        cost = np.linalg.norm(velocity - preferred, axis=1)
        cost += np.where(first < AVOID_HORIZON_S,
                         AVOID_WEIGHT * speed / np.maximum(first, 0.05), 0.0)
        cost += RIGHT_HAND_BIAS * speed * (offsets > 0.0)
        cost += IMPATIENCE_PER_S * min(stuck_s, 4.0) * (speed - np.linalg.norm(velocity, axis=1))
        look_s = min(0.4, waypoint_m / speed)
        ahead = agent.pos + velocity * max(look_s, DT_S)
        walkable = self.geometry.walkable(ahead, BODY_CLEARANCE_M + 0.03)
        walkable[1] = True      # standing still is always possible
        cost[~walkable] = np.inf
        return velocity[int(np.argmin(cost))]

    def _separate(self) -> None:
        """Ease apart pelvises closer than the hard gap (standing people do not give way).

        Pairs closer than HARD_GAP_M (partners PARTNER_HARD_GAP_M) move apart by at most
        SEPARATION_STEP_M per step; none is ever left closer than PARTNER_HARD_GAP_M.
        """
        agents = [a for a in self.agents if a.present]
        for iteration in range(4):
            if len(agents) < 2:
                break
            # The first round eases pairs towards their gap; later rounds only enforce
            # the floor (so that the easing stays at most SEPARATION_STEP_M per step).
            threshold = HARD_GAP_M if iteration == 0 else PARTNER_HARD_GAP_M
            positions = np.array([a.pos for a in agents])
            distance = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=2)
            rows, cols = np.nonzero(np.triu(distance < threshold, 1))
            if not len(rows):
                break
            for row, col in zip(rows, cols, strict=True):
                a, b = agents[int(row)], agents[int(col)]
                need = min(threshold, PARTNER_HARD_GAP_M if self.partnered(a, b)
                           else HARD_GAP_M)
                gap = float(np.linalg.norm(a.pos - b.pos))
                if gap >= need:
                    continue
                if gap > 1e-9:
                    direction = (a.pos - b.pos) / gap
                else:
                    angle = 2.399963 * min(a.pid, b.pid)   # a fixed, person-specific direction
                    direction = np.array([math.cos(angle), math.sin(angle)])
                push = max(min(need - gap, SEPARATION_STEP_M),
                           PARTNER_HARD_GAP_M - gap) + 1e-4
                weight_a = 1.0 if self.mobile(a) else 0.0
                weight_b = 1.0 if self.mobile(b) else 0.0
                if weight_a + weight_b == 0.0:
                    weight_a = weight_b = 1.0
                share = weight_a / (weight_a + weight_b)
                new_a = a.pos + direction * push * share
                new_b = b.pos - direction * push * (1.0 - share)
                ok = self.geometry.walkable(np.array([new_a, new_b]))
                if not ok[0] or not ok[1]:
                    # One side is against a shelf or wall: the other takes the whole push.
                    alone = [(a, a.pos + direction * push), (b, b.pos - direction * push)]
                    alone_ok = self.geometry.walkable(np.array([p for _, p in alone]))
                    for (agent, point), fine in zip(alone, alone_ok, strict=True):
                        if fine:
                            agent.pos = point
                            break
                    continue
                a.pos, b.pos = new_a, new_b
        for agent in agents:
            agent.velocity = (agent.pos - agent.previous_pos) / DT_S
            agent.previous_pos = agent.pos.copy()

    def _track_doors(self) -> None:
        """Note when people first step inside the walls and when they step out."""
        for agent in self.agents:
            if not agent.present:
                continue
            inside = self.geometry.inside(agent.pos)
            if inside and agent.entered_step is None:
                agent.entered_step = self.step
            elif not inside and agent.exiting and agent.entered_step is not None \
                    and agent.exit_step is None:
                agent.exit_step = self.step

    def stand_taken(self, agent: _Agent, stand: NDArray) -> bool:
        """Whether someone else stands at, or is bound for, a stand within RESERVE_GAP_M."""
        for other in self.agents:
            if other is agent or not other.present:
                continue
            if other.reserved_stand is not None and \
                    float(np.linalg.norm(other.reserved_stand - stand)) < RESERVE_GAP_M:
                return True
            if not self.mobile(other) and \
                    float(np.linalg.norm(other.pos - stand)) < RESERVE_GAP_M:
                return True
        return False

    def retarget_reach(self, agent: _Agent, reach: _Reach) -> bool:
        """Take another spot at the bin: the walk to a reach's stand ended short (blocked).

        False drops the reach (after three tries; a shared reach is then cancelled).
        """
        spot = self.reach_spot(agent, reach.spot.bin) if reach.walks <= 3 else None
        if spot is None:
            if reach.sync is not None:
                reach.sync.cancelled = True
            if reach.had_sync:
                agent.committed = False
            agent.reserved_stand = None
            return False
        reach.spot = spot
        return True

    # ----------------------------------------------------------------- entry

    def _plan_entry(self, agent: _Agent, party: _Party, holder: bool, place: int) -> None:
        """Start ``agent`` outside the entry door; walk in to the scanner (or behind it)."""
        door = self.geometry.doors[self.entry_gate.gate_id]
        rng = agent.rng
        agent.pos = door.point(float(rng.uniform(-0.8, 0.8)),
                               float(rng.uniform(*OUTSIDE_START_M)))
        agent.previous_pos = agent.pos.copy()
        agent.heading = math.atan2(-door.normal[1], -door.normal[0])
        agent.entering = True
        inward = agent.heading
        zone_low = np.maximum(np.array(self.entry_gate.min_m), self.geometry.bounds_low)
        zone_high = np.minimum(np.array(self.entry_gate.max_m), self.geometry.bounds_high)
        half = door.half_width_m
        if holder:
            stop = np.clip(door.point(-0.6 * half, -0.55), zone_low, zone_high)   # scanner
        else:
            # Companions and tailgaters stand aside in the gate zone, the doorway and out.
            stop = door.point(*((0.7 * half, -0.45), (0.0, -0.15), (0.2 * half, 0.4),
                                (-0.4 * half, 0.8))[min(place, 3)])
        # One party at a time goes through the door: the next waits outside, beside the
        # way in (parties alternate sides, members side by side).
        side = 1.0 if party.party_id % 2 else -1.0
        wait = door.point(side * (half + 0.5 + 0.5 * (place + 1)),
                          1.0 + float(rng.uniform(0.0, 0.5)))
        u0 = float(rng.uniform(-0.3, 0.3)) * half
        agent.queue.append(_WalkPath([wait], tolerance_m=0.8))
        agent.queue.append(_EntryTurn(party))
        agent.queue.append(_WalkPath([door.point(u0, 0.7), door.point(u0 * 0.5, -0.3),
                                      stop]))
        agent.queue.append(_Scan(party, inward) if holder else _AwaitScan(party, inward))

    def entry_turn(self, party: _Party) -> bool:
        """Whether a party may walk in: the party before it has scanned and walked on."""
        index = self.parties.index(party)
        if index == 0:
            return True
        before = self.parties[index - 1]
        if before.scan_step is None:
            return False
        # With the default entry.party_gap_s (2.5 s) the next party reaches the gate zone
        # after the gate's 3 s group window (gate.GateConfig.group_window_ns) closed.
        gap = int(round(self.scenario.entry.party_gap_s * STEP_HZ))
        if self.step < max(before.scan_step + gap, *before.release.values()):
            return False
        # Everyone who walks in on (or behind) that scan is inside first, so that no later
        # scan explains them; a straggler holds the door for at most ENTRY_STRAGGLER_S.
        behind = [*before.members, *before.tailgaters]
        inside = all(a.entered_step is not None for a in behind)
        return inside or self.step >= before.scan_step + int(ENTRY_STRAGGLER_S * STEP_HZ)

    def schedule_scan(self, party: _Party) -> None:
        """Schedule the QR scan ``entry.scan_delay_s`` after the holder reached the scanner."""
        holder = party.members[0]
        low, high = self.scenario.entry.scan_delay_s
        scan = self.step + max(1, int(round(float(holder.rng.uniform(low, high)) * STEP_HZ)))
        party.scan_step = scan
        party.release[holder.pid] = scan + int(round(holder.rng.uniform(0.3, 0.8) * STEP_HZ))
        for member in party.members[1:]:
            party.release[member.pid] = scan + int(round(member.rng.uniform(0.5, 1.8)
                                                         * STEP_HZ))
        for tailgater in party.tailgaters:
            party.release[tailgater.pid] = scan + int(round(tailgater.rng.uniform(0.4, 1.5)
                                                            * STEP_HZ))
        self.check_ins_at.setdefault(scan, []).append((party, list(party.members)))

    # ----------------------------------------------------------------- behaviours

    def _time_left_ok(self, agent: _Agent, seconds: float) -> bool:
        need = seconds + self.exit_estimate_s(agent.pos, self.exit_gate)
        return self.step + need * STEP_HZ < self.total_steps

    def _free_shoppers(self, exclude: _Agent) -> list[_Agent]:
        return [a for a in self.agents if a.present and a.role == 'shopper' and a is not exclude
                and not a.exiting and not a.committed and not a.entering
                and self._time_left_ok(a, 30.0)]

    def maybe_shared_reach(self, agent: _Agent, spot: _ReachSpot) -> Optional[_Sync]:
        """With probability ``shared_reach``, bring another shopper to the same shelf."""
        if agent.committed or self.rng.random() >= self.scenario.behaviours.shared_reach:
            return None
        if not self._time_left_ok(agent, 35.0):
            return None
        candidates = self._free_shoppers(agent)
        if not candidates:
            return None
        partner = candidates[int(self.rng.integers(len(candidates)))]
        local_x = float(spot.shelf.t_map_shelf.inverse().apply(spot.target)[0])
        bins = [b for b in spot.shelf.bins if any(self.stock[b.bin_id].get(s, 0) > 0
                                                  for s in b.skus)]
        for index in self.rng.permutation(len(bins)):
            bin_ = bins[int(index)]
            partner_spot = self.reach_spot(partner, bin_, avoid_x=local_x)
            if partner_spot is None:
                continue
            skus = [s for s in bin_.skus if self.stock[bin_.bin_id].get(s, 0) > 0]
            sku = skus[int(partner.rng.integers(len(skus)))]
            sync = _Sync([agent, partner], self.step)
            self.syncs.append(sync)
            partner.committed = True
            agent.committed = True
            agent.partners, partner.partners = {partner.pid}, {agent.pid}
            partner.pending.append(_Reach('pick', partner_spot, sku, 1, sync=sync))
            return sync
        return None

    def with_touch(self, spot: _ReachSpot, pick: _Reach) -> list[_Action]:
        """Return the reaches of one list line: with probability ``touch_no_pick`` a touch first.

        After the touch (a press, or a unit lifted and put back) and a short pause the
        shopper picks, or leaves the item and walks on. Shared reaches are never touched.
        """
        rate = self.scenario.behaviours.touch_no_pick
        if pick.sync is not None or rate <= 0.0 or self.touch_rng.random() >= rate:
            return [pick]
        actions: list[_Action] = [
            _Reach('touch', spot, pick.sku, 1, ['touch_no_pick']),
            _Dwell(int(self.touch_rng.uniform(0.5, 2.0) * STEP_HZ), spot.heading)]
        if self.touch_rng.random() >= TOUCH_LEAVE_PROBABILITY:
            actions.append(pick)
        return actions

    def after_pick(self, agent: _Agent, reach: _Reach) -> None:
        """Decide what happens to a picked item: keep, put back, misplace or hand off."""
        behaviours = self.scenario.behaviours
        event = reach.event
        assert event is not None
        if agent.role != 'shopper' or agent.committed or not self._time_left_ok(agent, 30.0):
            return
        draw = self.rng.random()
        if draw < behaviours.return_same_bin:
            spot = self.reach_spot(agent, reach.spot.bin)
            if spot is not None:
                event['behaviours'].append('return_same_bin')
                agent.queue.appendleft(_Reach('return', spot, reach.sku, reach.quantity,
                                              ['return_same_bin'], pick_event=event))
                agent.queue.appendleft(_Dwell(int(agent.rng.uniform(1.0, 3.0) * STEP_HZ),
                                              reach.spot.heading))
            return
        draw -= behaviours.return_same_bin
        if draw < behaviours.return_other_bin:
            others = [b for b in self.bins.values()
                      if self.shelf_of_bin[b.bin_id] is not reach.spot.shelf]
            others.sort(key=lambda b: float(np.linalg.norm(self._bin_floor(b) - agent.pos)))
            for bin_ in others[:4]:
                spot = self.reach_spot(agent, bin_)
                if spot is not None:
                    event['behaviours'].append('return_other_bin')
                    agent.queue.appendleft(_Reach('return', spot, reach.sku, reach.quantity,
                                                  ['return_other_bin'], pick_event=event))
                    return
            return
        draw -= behaviours.return_other_bin
        if draw < behaviours.hand_off and reach.quantity == 1:
            companions = [m for m in agent.others_in_party() if m.present and not m.exiting
                          and not m.committed]
            if companions:
                receiver = companions[int(self.rng.integers(len(companions)))]
                handoff = _HandOff(agent, receiver, reach.sku, event, self.step)
                agent.committed = True
                receiver.committed = True
                agent.partners, receiver.partners = {receiver.pid}, {agent.pid}
                event['behaviours'].append('hand_off')
                agent.queue.appendleft(_GiveItem(handoff))
                agent.queue.appendleft(_GiveApproach(handoff))
                receiver.pending.append(_ReceiveWait(handoff))
            return
        if agent.tangle_planned:
            self._start_tangle(agent)

    def _start_tangle(self, agent: _Agent) -> None:
        """``agent`` walks up to another shopper and walks in contact with it a while."""
        agent.tangle_planned = False
        if not self._time_left_ok(agent, 40.0):
            return
        candidates = [a for a in self._free_shoppers(agent) if a.party is not agent.party]
        if not candidates:
            candidates = self._free_shoppers(agent)
        if not candidates:
            return
        leader = candidates[int(self.rng.integers(len(candidates)))]
        tangle = _Tangle(leader, agent, self.step, side=1.0 if self.rng.random() < 0.5
                         else -1.0)
        detour_goal = self.geometry.random_free_point(self.rng, leader.pos, (4.0, 8.0))
        tangle.detour = _Walk(detour_goal, 'walk')
        leader.committed = True
        agent.committed = True
        agent.partners, leader.partners = {leader.pid}, {agent.pid}
        leader.pending.extend([_TangleWait(tangle), tangle.detour])
        follow_steps = int(self.rng.uniform(3.0, 6.0) * STEP_HZ)
        agent.queue.appendleft(_TangleFollow(tangle, follow_steps))
        agent.queue.appendleft(_TangleApproach(tangle))

    # ----------------------------------------------------------------- records

    def schedule_reach(self, agent: _Agent, reach: _Reach) -> Optional[dict[str, Any]]:
        """Fix a reach's timing: units, load-cell changes and presses, the truth record.

        Units move between bins and hands here (``units``); the stock counts follow at
        the event's step (``_apply_events``). Each weight change ramps over a drawn time
        centred on the event's step, inside the hand's contact with the bin.
        """
        bin_id = reach.spot.bin.bin_id
        shelf_id = reach.spot.shelf.shelf_id
        units = self.units[bin_id]
        sku, quantity = reach.sku, reach.quantity
        if reach.kind in ('pick', 'touch'):
            if len(units.get(sku, ())) < quantity:
                available = [s for s in reach.spot.bin.skus if len(units.get(s, ())) >= quantity]
                if not available:
                    available = [s for s in reach.spot.bin.skus if units.get(s)]
                    quantity = 1
                if not available:
                    return None
                sku = available[int(agent.rng.integers(len(available)))]
                reach.sku, reach.quantity = sku, quantity
        elif reach.kind == 'return':
            if sku not in agent.basket:
                return None
        sign = -1.0 if reach.kind == 'pick' else 1.0
        k0, steps = reach.k0, reach.steps
        touch_start = k0 + int(0.3 * steps)
        touch_end = k0 + int(0.7 * steps)
        contact = touch_end - touch_start
        k_event = k0 + steps // 2
        if reach.kind == 'touch':
            return self._schedule_touch(agent, reach, touch_start, touch_end)
        self.loadcells.press(bin_id, touch_start, contact)
        if reach.kind == 'pick':
            moved = [units[sku].pop(0) for _ in range(quantity)]
        elif reach.kind == 'return':
            picked = reach.pick_event['_units'] if reach.pick_event is not None else None
            moved = list(picked) if picked is not None and len(picked) == quantity else \
                self._new_units(sku, quantity)
            units[sku] = moved + units.get(sku, [])
        else:
            moved = self._new_units(sku, quantity)
            units.setdefault(sku, []).extend(moved)
        if reach.kind == 'restock':
            spacing = contact / quantity
            for unit_index, weight in enumerate(moved):
                k = touch_start + int((unit_index + 0.5) * spacing)
                ramp = self.loadcells.ramp_steps(max(1, int(spacing) - 1))
                self.loadcells.change(bin_id, k - ramp // 2, weight, ramp)
        else:
            ramp = self.loadcells.ramp_steps(contact - 2)
            self.loadcells.change(bin_id, k_event - ramp // 2, sign * sum(moved), ramp)
        behaviours = list(reach.behaviours)
        if reach.pick_event is not None:
            for tag in reach.pick_event['behaviours']:
                if tag not in behaviours:
                    behaviours.append(tag)
        event = {
            'kind': reach.kind, 'stamp_ns': self.stamp(k_event),
            'start_ns': self.stamp(touch_start), 'end_ns': self.stamp(touch_end),
            'person_id': agent.pid, 'to_person_id': None,
            'account_id': agent.account_id if agent.role == 'shopper' else None,
            'sku': sku, 'quantity': quantity, 'bin_id': bin_id, 'shelf_id': shelf_id,
            'delta_grams': round(sign * sum(moved), 3), 'behaviours': behaviours,
            '_step': k_event, '_agent': agent, '_reach': reach, '_done': False,
            '_touch': (touch_start, touch_end), '_pick': reach.pick_event, '_units': moved}
        self.events.append(event)
        if reach.sync is not None:
            reach.sync.windows[agent.pid] = (touch_start, touch_end)
        if reach.kind == 'return':
            agent.basket.remove(sku)
            agent.hand_items[reach.spot.side].append(sku)
        elif reach.kind == 'restock':
            agent.hand_items[reach.spot.side].extend([sku] * quantity)
        return event

    def _new_units(self, sku: str, quantity: int) -> list[float]:
        """Weights (g) of new units of a SKU, within the catalog tolerance."""
        product = self.store.product(sku)
        return draw_unit_weights(self.unit_rng, product.unit_weight_g,
                                 product.weight_tolerance_g, quantity)

    def _schedule_touch(self, agent: _Agent, reach: _Reach, touch_start: int,
                        touch_end: int) -> dict[str, Any]:
        """Record a touch that takes nothing: a press, or the front unit lifted and put back."""
        bin_id = reach.spot.bin.bin_id
        lifted = 0.0
        if self.touch_rng.random() < TOUCH_LIFT_PROBABILITY:
            lifted = self.units[bin_id][reach.sku][0]
            reach.held_steps = self.loadcells.lift(bin_id, touch_start, touch_end - touch_start,
                                                   lifted)
        else:
            self.loadcells.press(bin_id, touch_start, touch_end - touch_start)
        touch = {
            'stamp_ns': self.stamp((touch_start + touch_end) // 2),
            'start_ns': self.stamp(touch_start), 'end_ns': self.stamp(touch_end),
            'person_id': agent.pid,
            'account_id': agent.account_id if agent.role == 'shopper' else None,
            'sku': reach.sku, 'bin_id': bin_id, 'shelf_id': reach.spot.shelf.shelf_id,
            'lifted_grams': round(lifted, 3)}
        self.touches.append(touch)
        return touch

    def _apply_events(self) -> None:
        """Move stock and items at the steps the reaches scheduled."""
        for event in self.events:
            if event['_done'] or event['_step'] != self.step or event['kind'] == 'hand_off':
                continue
            event['_done'] = True
            agent: _Agent = event['_agent']
            reach: _Reach = event['_reach']
            stock = self.stock[event['bin_id']]
            sku, quantity = event['sku'], event['quantity']
            if event['kind'] == 'pick':
                stock[sku] -= quantity
                agent.hand_items[reach.spot.side].extend([sku] * quantity)
            elif event['kind'] == 'return':
                stock[sku] = stock.get(sku, 0) + quantity
                if sku in agent.hand_items[reach.spot.side]:
                    agent.hand_items[reach.spot.side].remove(sku)
            else:
                stock[sku] = stock.get(sku, 0) + quantity
                hand = agent.hand_items[reach.spot.side]
                for _ in range(min(quantity, hand.count(sku))):
                    hand.remove(sku)

    def record_hand_off(self, handoff: _HandOff) -> None:
        """Write the truth event of a hand-off that starts now."""
        assert handoff.go_step is not None
        giver = handoff.giver
        self.events.append({
            'kind': 'hand_off', 'stamp_ns': self.stamp(handoff.go_step + handoff.steps // 2),
            'start_ns': self.stamp(handoff.go_step + int(0.45 * handoff.steps)),
            'end_ns': self.stamp(handoff.go_step + int(0.55 * handoff.steps)),
            'person_id': giver.pid, 'to_person_id': handoff.receiver.pid,
            'account_id': giver.account_id, 'sku': handoff.sku, 'quantity': 1,
            'bin_id': None, 'shelf_id': None, 'delta_grams': 0.0, 'behaviours': ['hand_off'],
            '_step': handoff.go_step + handoff.steps // 2, '_done': True,
            '_pick': handoff.pick_event})

    def record_tangle(self, tangle: _Tangle) -> None:
        """Count a tangled walk if the two were in contact long enough."""
        first, last = tangle.longest
        if last - first >= int(1.5 * STEP_HZ):
            self.episodes.append(TruthEpisode(
                'tangled', self.stamp(first), self.stamp(last),
                (tangle.leader.pid, tangle.follower.pid)))

    def stamp(self, step: int) -> int:
        """Stamp (ns) of a step."""
        return stamp_of_step(self.start_ns, step)

    def remove(self, agent: _Agent) -> None:
        """Take an agent out of the world (it walked out through a gate, and its door)."""
        agent.present = False
        if agent.exit_step is None:
            agent.exit_step = self.step

    # ----------------------------------------------------------------- stepping

    def _running_late(self, agent: _Agent) -> None:
        """Drop what is left of a late shopper's list: walk out before the run ends."""
        if agent.role != 'shopper' or agent.exiting or agent.pending or self.step % STEP_HZ:
            return
        if agent.action is not None and not agent.action.interruptible:
            return
        if self._time_left_ok(agent, RUNNING_LATE_MARGIN_S):
            return
        optional = (_Walk, _Dwell, _Reach, _ShopItem)
        if not any(isinstance(a, optional) for a in (agent.action, *agent.queue)):
            return
        if agent.action is not None and isinstance(agent.action, optional):
            agent.action = None
            agent.reset_arms()
        agent.queue = deque(a for a in agent.queue if not isinstance(a, optional))

    def _advance(self, agent: _Agent) -> None:
        self._running_late(agent)
        if agent.pending and (agent.action is None or agent.action.interruptible):
            if agent.action is not None:
                back = agent.action.interrupted()
                if back is not None:
                    agent.queue.appendleft(back)
                agent.action = None
                agent.reset_arms()
            for action in reversed(agent.pending):
                agent.queue.appendleft(action)
            agent.pending.clear()
        for _ in range(20):
            if agent.action is not None or not agent.queue:
                break
            candidate = agent.queue.popleft()
            if candidate.start(self, agent):
                agent.action = candidate
        if agent.action is None:
            agent.stand_still()
            return
        if agent.action.step(self, agent):
            if isinstance(agent.action, _Reach):
                agent.reserved_stand = None
            agent.action = None

    def _body(self, agent: _Agent) -> BodyState:
        physique = agent.physique
        x, y = float(agent.pos[0]), float(agent.pos[1])
        joints = pose_joints(physique, PoseInput(
            x, y, agent.heading, agent.phase, agent.speed, agent.crouch, agent.lean,
            agent.targets['left'], agent.amounts['left'], agent.targets['right'],
            agent.amounts['right']))
        held: list[HeldItem] = []
        for side in ('left', 'right'):
            for sku in agent.hand_items[side]:
                held.append(HeldItem(sku, joints[f'{side}_hand'] + [0.0, 0.0, -0.04], side))
        for index, sku in enumerate(agent.basket):
            held.append(HeldItem(sku, basket_position(physique, x, y, agent.heading,
                                                      agent.crouch, index), 'basket'))
        return BodyState(agent.pid, joints, physique.shirt_rgb, physique.trousers_rgb,
                         physique.skin_rgb, tuple(held), agent.heading, agent.role,
                         physique.shoulder_width_m, physique.hair_rgb, physique.hat_rgb,
                         physique.bag, physique.bag_rgb)

    def _check_ins(self) -> list[CheckInData]:
        data = []
        for party, members in self.check_ins_at.get(self.step, ()):
            stamp = self.stamp(self.step)
            issued = stamp - int(self.token_rng.uniform(3.0, 30.0) * 1e9)
            token = self.issuer.issue(party.account_id, issued, TOKEN_TTL_NS,
                                      token_id=self.token_rng.bytes(16))
            data.append(CheckInData(self.entry_gate.gate_id, token, party.account_id))
            self.check_in_truth.append(TruthCheckIn(
                stamp, self.entry_gate.gate_id, party.account_id,
                tuple(m.pid for m in members), tuple(t.pid for t in party.tailgaters)))
            if len(members) > 1:
                # Until the last member walks on from the gate (or, without a door, appears).
                last = max(party.release.get(m.pid, m.enter_step) for m in members)
                self.episodes.append(TruthEpisode(
                    'group_entry', stamp, self.stamp(max(last, self.step)),
                    tuple(m.pid for m in members)))
            for tailgater in party.tailgaters:
                self.episodes.append(TruthEpisode(
                    'tailgating', stamp, self.stamp(party.release[tailgater.pid]),
                    (tailgater.pid,)))
        return data

    def run(self) -> Iterator[Tick]:
        """Step the world to the end of the scenario, yielding a tick per 60 Hz step."""
        self._reset()
        fps = self.scenario.render.camera_fps
        for step in range(self.total_steps):
            self.step = step
            for agent in self.arrivals.get(step, ()):
                agent.present = True
            check_ins = self._check_ins()
            self._apply_events()
            self._crowd_snapshot()
            for agent in self.agents:
                if agent.present:
                    self._advance(agent)
            self._separate()
            self._track_doors()
            batches = self.loadcells.sample(step, self.stamp(step))
            camera_frame = step == 0 or math.floor(step * fps / STEP_HZ + 1e-9) != \
                math.floor((step - 1) * fps / STEP_HZ + 1e-9)
            captures, dropped = self.cameras.step(step, self.stamp(step))
            if camera_frame:
                self.sensor_counts['camera_frames'] += 1
            self.sensor_counts['load_cell_batches'] += len(batches)
            bodies = tuple(self._body(a) for a in self.agents if a.present)
            if camera_frame:
                self._record_frame(step, bodies)
            stock = {b: dict(units) for b, units in self.stock.items()} \
                if camera_frame or captures else None
            yield Tick(self.stamp(step), bodies, camera_frame, dropped, tuple(batches),
                       tuple(check_ins), step, stock, captures)
        self.sensor_counts['load_cell_spikes'] = self.loadcells.spike_count
        self.sensor_counts['camera_frames_dropped'] = self.cameras.dropped
        self.sensor_counts['camera_frames_outage'] = self.cameras.lost_to_outages
        self.truth = self._finish_truth()

    def _record_frame(self, step: int, bodies: tuple[BodyState, ...]) -> None:
        people = []
        for body in bodies:
            if not self.geometry.inside(body.joints['pelvis'][:2]):
                continue        # outside the walls (before or after the door)
            rows = np.round(np.array([body.joints[name] for name in JOINTS]), 3).tolist()
            joints = dict(zip(JOINTS, rows, strict=True))
            pelvis = joints['pelvis']
            people.append(TruthFramePerson(body.person_id, pelvis[0], pelvis[1], joints))
        self.frames.append(TruthFrame(self.stamp(step), tuple(people)))

    def _finish_truth(self) -> Truth:
        events = sorted((e for e in self.events if e['_step'] < self.total_steps),
                        key=lambda e: (e['stamp_ns'], e['person_id'], e['kind']))
        # A pick keeps a behaviour tag only if the return or hand-off really happened.
        followed = {id(e['_pick']): e['kind'] for e in events if e.get('_pick') is not None}
        for event in events:
            if event['kind'] == 'pick':
                kind = followed.get(id(event))
                event['behaviours'] = [
                    tag for tag in event['behaviours']
                    if tag not in ('return_same_bin', 'return_other_bin', 'hand_off')
                    or (tag == 'hand_off') == (kind == 'hand_off') and kind is not None]
        truth_events = []
        for index, event in enumerate(events, start=1):
            public = {k: v for k, v in event.items() if not k.startswith('_')}
            public['behaviours'] = tuple(public['behaviours'])
            truth_events.append(TruthEvent(event_id=f'e{index:04d}', **public))
        for sync in self.syncs:
            if len(sync.windows) == len(sync.participants):
                starts = [w[0] for w in sync.windows.values()]
                ends = [w[1] for w in sync.windows.values()]
                self.episodes.append(TruthEpisode(
                    'shared_reach', self.stamp(min(starts)), self.stamp(max(ends)),
                    tuple(a.pid for a in sync.participants)))
        episodes = tuple(sorted(self.episodes, key=lambda e: (e.start_ns, e.behaviour)))
        touches = tuple(
            TruthTouch(touch_id=f't{index:04d}', **touch) for index, touch in enumerate(
                sorted(self.touches, key=lambda t: (t['stamp_ns'], t['person_id'])), start=1))
        counts = {name: 0 for name in BEHAVIOURS}
        counts['touch_no_pick'] = len(touches)
        for episode in episodes:
            counts[episode.behaviour] += 1
        for truth_event in truth_events:
            if truth_event.kind == 'return':
                for tag in ('return_same_bin', 'return_other_bin'):
                    counts[tag] += tag in truth_event.behaviours
            elif truth_event.kind in ('hand_off', 'restock'):
                counts[truth_event.kind] += 1
        end_ns = self.stamp(self.total_steps - 1)
        outages = tuple(TruthCameraOutage(o.camera_id, o.start_ns, min(o.end_ns, end_ns))
                        for o in self.cameras.outages)
        counts['camera_outage'] = len(outages)
        people = tuple(TruthPerson(
            person_id=a.pid, role=a.role, account_id=a.account_id,
            party_id=a.party.party_id if a.party is not None else None,
            height_m=round(a.physique.height_m, 3), enter_ns=self.stamp(a.entered_step),
            exit_ns=self.stamp(a.exit_step) if a.exit_step is not None else None)
            for a in sorted(self.agents, key=lambda a: a.pid) if a.entered_step is not None)
        # Only people who got inside before the end count, at the scan too.
        entered = {person.person_id for person in people}
        check_ins = tuple(dataclasses.replace(
            c, person_ids=tuple(p for p in c.person_ids if p in entered),
            tailgater_ids=tuple(p for p in c.tailgater_ids if p in entered))
            for c in self.check_in_truth)
        prices = {sku: p.price_cents for sku, p in self.store.catalog.items()}
        receipts = compute_receipts(truth_events, [p.account_id for p in self.parties], prices)
        return Truth(
            scenario=self.scenario.name, seed=self.scenario.seed, store=self.store.name,
            start_ns=self.start_ns, end_ns=self.stamp(self.total_steps - 1),
            frame_period_ns=int(round(1e9 / self.scenario.render.camera_fps)),
            people=people, frames=tuple(self.frames), events=tuple(truth_events),
            check_ins=check_ins, receipts=receipts,
            behaviour_counts=counts, episodes=episodes, sensor_counts=dict(self.sensor_counts),
            camera_outages=outages, camera_clocks=tuple(
                TruthCameraClock(c.camera_id, c.offset_ns, c.drift_ppm, c.latency_ns,
                                 c.phase_steps) for c in self.cameras.clocks),
            touches=touches)
