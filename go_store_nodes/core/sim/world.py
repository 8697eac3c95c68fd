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
from dataclasses import dataclass
import math
import pathlib
from typing import Any, Iterator, Mapping, Optional

import numpy as np
from numpy.typing import NDArray

from ..ledger.tokens import load_private_key, TokenIssuer
from ..store import Bin, Gate, StoreDescription
from . import steering

# The imports marked F401 also keep the names this module defined before its actions,
# geometry, motion and steering moved to their own modules (tests and tools use them).
from .actions import (  # noqa: F401
    _Action,
    _Agent,
    _AssociateLoop,
    _AwaitScan,
    _Dwell,
    _EntryTurn,
    _GiveApproach,
    _GiveItem,
    _HandOff,
    _Leave,
    _Party,
    _Reach,
    _ReachSpot,
    _ReceiveWait,
    _Scan,
    _ShopItem,
    _Sync,
    _Tangle,
    _TangleApproach,
    _TangleFollow,
    _TangleWait,
    _Walk,
    _WalkPath,
    ACCEL_MPS2,
    BROWSE_NEAR_SHELF_M,
    DECEL_MPS2,
    FOLLOW_MAX_SPEED_MPS,
    OUTSIDE_END_M,
    STUCK_GIVE_UP_M,
    STUCK_GIVE_UP_S,
    STUCK_REPLAN_S,
    TANGLE_CONTACT_M,
    TURN_RATE_RAD_S,
    WAYPOINT_REACHED_M,
)
from .cameras import CameraCapture, CameraRig, CameraTimingConfig
from .geometry import (  # noqa: F401
    BODY_CLEARANCE_M,
    Door,
    DOOR_HALF_WIDTH_M,
    door_of,
    Geometry,
    INFLATION_M,
    NODE_INFLATION_M,
    WALL_MARGIN_M,
)
from .loadcells import draw_unit_weights, LoadCellArray, LoadCellBatchData, LoadCellConfig
from .motion import (  # noqa: F401
    DT_S,
    stamp_of_step,
    STEP_HZ,
)
from .people import (  # noqa: F401
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
from .steering import (  # noqa: F401
    AVOID_HORIZON_S,
    AVOID_WEIGHT,
    COMFORT_GAP_M,
    HARD_GAP_M,
    IMPATIENCE_PER_S,
    NEIGHBOUR_RANGE_M,
    PARTNER_GAP_M,
    PARTNER_HARD_GAP_M,
    RIGHT_HAND_BIAS,
    SEPARATION_STEP_M,
    STEER_OFFSETS_RAD,
    STEER_SPEED_FACTORS,
)
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

RESERVE_GAP_M = 0.55          # a stand is free when nobody stands or means to stand nearer
OUTSIDE_START_M = (2.5, 3.5)  # shoppers start this far outside the entry door
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
        """Choose this step's velocity (m/s) around the crowd (``steering.steer``)."""
        return steering.steer(self, agent, preferred, waypoint_m, remaining_m, stuck_s)

    def _separate(self) -> None:
        """Ease apart pelvises closer than the hard gap (``steering.separate``)."""
        steering.separate(self)

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
            # The app asks how many walk in on the code; tailgaters are not in the party.
            token = self.issuer.issue(party.account_id, issued, TOKEN_TTL_NS,
                                      token_id=self.token_rng.bytes(16),
                                      party_size=len(members))
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
