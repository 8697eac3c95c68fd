"""What people do in the simulated store: the actions an agent's queue holds.

Walk (along a planned path, steering around people), dwell, leave through a gate, entry
(turn, scan, wait for the scan), reach into a bin, hand-off, tangled walk, shop an item,
the associate's loop. Each action is stepped at 60 Hz with the world it is given, a
``_World`` (``world.Simulation`` provides it), so that nothing here imports the world.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
import math
from typing import Any, Optional, Protocol, Sequence

import numpy as np
from numpy.typing import NDArray

from ..store import Bin, Gate, Shelf, StoreDescription
from .geometry import BODY_CLEARANCE_M, Geometry
from .motion import _envelope, _wrap, DT_S, STEP_HZ
from .people import Physique
from .scenario import Scenario

ACCEL_MPS2 = 1.2
DECEL_MPS2 = 1.0
TURN_RATE_RAD_S = 6.0
BROWSE_NEAR_SHELF_M = 0.6
FOLLOW_MAX_SPEED_MPS = 1.4
TANGLE_CONTACT_M = 0.38      # pelvises this close count as walking in contact
WAYPOINT_REACHED_M = 0.12     # an intermediate waypoint this close counts as passed
STUCK_REPLAN_S = 4.0          # no progress on a walk for this long: re-plan the path
STUCK_GIVE_UP_S = 10.0        # ... for this long within STUCK_GIVE_UP_M of the goal: stop
STUCK_GIVE_UP_M = 1.5
OUTSIDE_END_M = 2.5           # people disappear this far outside the exit door


class _World(Protocol):
    """What actions use of the world they step in (``world.Simulation`` provides it)."""

    @property
    def scenario(self) -> Scenario: ...

    @property
    def store(self) -> StoreDescription: ...

    @property
    def geometry(self) -> Geometry: ...

    @property
    def step(self) -> int: ...

    @property
    def total_steps(self) -> int: ...

    @property
    def max_bin_load_g(self) -> float: ...

    @property
    def exit_gate(self) -> Gate: ...

    @property
    def staff_gate(self) -> Gate: ...

    def steer(self, agent: _Agent, preferred: NDArray, waypoint_m: float,
              remaining_m: float, stuck_s: float = 0.0) -> NDArray: ...

    def gate_point(self, gate: Gate, rng: np.random.Generator) -> NDArray: ...

    def exit_estimate_s(self, position: NDArray, gate: Gate) -> float: ...

    def meeting_point(self, other: NDArray, me: NDArray, gap_m: float) -> NDArray: ...

    def idle_point(self, agent: _Agent) -> NDArray: ...

    def bin_load_g(self, bin_id: str) -> float: ...

    def reach_spot(self, agent: _Agent, bin_: Bin, avoid_x: Optional[float] = None
                   ) -> Optional[_ReachSpot]: ...

    def retarget_reach(self, agent: _Agent, reach: _Reach) -> bool: ...

    def entry_turn(self, party: _Party) -> bool: ...

    def schedule_scan(self, party: _Party) -> None: ...

    def maybe_shared_reach(self, agent: _Agent, spot: _ReachSpot) -> Optional[_Sync]: ...

    def with_touch(self, spot: _ReachSpot, pick: _Reach) -> list[_Action]: ...

    def after_pick(self, agent: _Agent, reach: _Reach) -> None: ...

    def schedule_reach(self, agent: _Agent, reach: _Reach) -> Optional[dict[str, Any]]: ...

    def record_hand_off(self, handoff: _HandOff) -> None: ...

    def record_tangle(self, tangle: _Tangle) -> None: ...

    def remove(self, agent: _Agent) -> None: ...


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

    def start(self, sim: _World, agent: _Agent) -> bool:
        return True

    def step(self, sim: _World, agent: _Agent) -> bool:
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

    def _passed(self, sim: _World, agent: _Agent) -> bool:
        """Whether the next (intermediate) waypoint is reached or already behind the agent.

        People pushed or steered past a waypoint go on to the next one when it is in
        sight, instead of turning back.
        """
        here, after = self.points[0] - agent.pos, self.points[1] - self.points[0]
        if float(np.linalg.norm(here)) < WAYPOINT_REACHED_M:
            return True
        return float(np.dot(here, after)) < 0.0 and bool(sim.geometry.segments_clear(
            agent.pos, self.points[1], BODY_CLEARANCE_M + 0.05)[0])

    def _unstick(self, sim: _World, agent: _Agent, remaining: float) -> bool:
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

    def move(self, sim: _World, agent: _Agent, pace: str) -> bool:
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

    def start(self, sim: _World, agent: _Agent) -> bool:
        self.follower = _Follower(sim.geometry.plan(agent.pos, self.goal))
        return True

    def step(self, sim: _World, agent: _Agent) -> bool:
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

    def step(self, sim: _World, agent: _Agent) -> bool:
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

    def start(self, sim: _World, agent: _Agent) -> bool:
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

    def step(self, sim: _World, agent: _Agent) -> bool:
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

    def start(self, sim: _World, agent: _Agent) -> bool:
        self.follower = _Follower([agent.pos, *self.points], replan=False,
                                  tolerance_m=self.tolerance_m)
        return True

    def step(self, sim: _World, agent: _Agent) -> bool:
        assert self.follower is not None
        return self.follower.move(sim, agent, 'walk')


class _EntryTurn(_Action):
    """Wait outside the entry door until the party before has scanned and walked on."""

    def __init__(self, party: _Party) -> None:
        self.party = party
        self.count = 0

    def step(self, sim: _World, agent: _Agent) -> bool:
        agent.stand_still()
        self.count += 1
        return sim.entry_turn(self.party) or self.count > 30 * STEP_HZ


class _Scan(_Action):
    """The party's QR holder stands at the entry scanner; the scan comes a moment later."""

    def __init__(self, party: _Party, heading: float) -> None:
        self.party = party
        self.heading = heading

    def step(self, sim: _World, agent: _Agent) -> bool:
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

    def step(self, sim: _World, agent: _Agent) -> bool:
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

    def start(self, sim: _World, agent: _Agent) -> bool:
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

    def _go(self, sim: _World, agent: _Agent, k0: int) -> None:
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

    def step(self, sim: _World, agent: _Agent) -> bool:
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

    def step(self, sim: _World, agent: _Agent) -> bool:
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

    def start(self, sim: _World, agent: _Agent) -> bool:
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

    def step(self, sim: _World, agent: _Agent) -> bool:
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

    def start(self, sim: _World, agent: _Agent) -> bool:
        self.handoff.receiver_ready = True
        return True

    def step(self, sim: _World, agent: _Agent) -> bool:
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

    def start(self, sim: _World, agent: _Agent) -> bool:
        self.tangle.leader_ready = True
        return True

    def step(self, sim: _World, agent: _Agent) -> bool:
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

    def step(self, sim: _World, agent: _Agent) -> bool:
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

    def start(self, sim: _World, agent: _Agent) -> bool:
        if self.tangle.cancelled:
            agent.committed = False
            return False
        return True

    def _target(self, sim: _World, side: float) -> NDArray:
        leader = self.tangle.leader
        forward = np.array([math.cos(leader.heading), math.sin(leader.heading)])
        left = np.array([-forward[1], forward[0]])
        return leader.pos - 0.12 * forward + side * 0.29 * left

    def step(self, sim: _World, agent: _Agent) -> bool:
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

    def _finish(self, sim: _World, agent: _Agent) -> bool:
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

    def start(self, sim: _World, agent: _Agent) -> bool:
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

    def start(self, sim: _World, agent: _Agent) -> bool:
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
