"""Crowd motion: people steer around each other, then a separation pass eases them apart.

Sampled velocity obstacles (``steer``) and a separation pass (``separate``), written
here, no external library (docs/simulation.md). Both read the world through the few
members of ``_Crowd`` that ``world.Simulation`` provides.
"""

from __future__ import annotations

import math
from typing import Protocol, TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from .geometry import BODY_CLEARANCE_M, Geometry
from .motion import DT_S

if TYPE_CHECKING:
    from .actions import _Agent

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
NEIGHBOUR_RANGE_M = 2.5       # people farther away are ignored by steering
AVOID_HORIZON_S = 2.0         # steering looks this far ahead for collisions
AVOID_WEIGHT = 1.0            # cost (m/s per m/s of speed) of a collision 1 s ahead
RIGHT_HAND_BIAS = 0.08        # cost (per m/s of speed) of dodging left: both dodge right
IMPATIENCE_PER_S = 0.7        # cost (per m/s of speed lost, per s without progress) of
                              # going slow: standing still stops being the cheapest way out
STEER_OFFSETS_RAD = tuple(math.radians(a) for a in (15, -15, 30, -30, 45, -45, 60, -60,
                                                    80, -80, 100, -100))
STEER_SPEED_FACTORS = (1.0, 0.6, 0.3)

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


class _Crowd(Protocol):
    """What steering reads of the world: who is present, where, how fast; the floor."""

    @property
    def agents(self) -> list[_Agent]: ...

    @property
    def crowd_agents(self) -> list[_Agent]: ...

    @property
    def crowd_pos(self) -> NDArray: ...

    @property
    def crowd_vel(self) -> NDArray: ...

    @property
    def geometry(self) -> Geometry: ...

    def partnered(self, a: _Agent, b: _Agent) -> bool: ...

    def mobile(self, agent: _Agent) -> bool: ...


def steer(sim: _Crowd, agent: _Agent, preferred: NDArray, waypoint_m: float,
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
    if speed < 1e-9 or not len(sim.crowd_pos):
        return preferred
    offset = sim.crowd_pos - agent.pos
    close = np.flatnonzero(np.max(np.abs(offset), axis=1) < NEIGHBOUR_RANGE_M)
    near = [sim.crowd_agents[int(k)] for k in close
            if sim.crowd_agents[int(k)] is not agent]
    if not near:
        return preferred
    keep = [int(k) for k in close if sim.crowd_agents[int(k)] is not agent]
    relative = offset[keep]
    velocities = sim.crowd_vel[keep]
    stranger_gap = HARD_GAP_M if remaining_m < 1.0 else COMFORT_GAP_M
    gaps = np.array([PARTNER_GAP_M if sim.partnered(agent, other) else stranger_gap
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
    walkable = sim.geometry.walkable(ahead, BODY_CLEARANCE_M + 0.03)
    walkable[1] = True      # standing still is always possible
    cost[~walkable] = np.inf
    return velocity[int(np.argmin(cost))]


def separate(sim: _Crowd) -> None:
    """Ease apart pelvises closer than the hard gap (standing people do not give way).

    Pairs closer than HARD_GAP_M (partners PARTNER_HARD_GAP_M) move apart by at most
    SEPARATION_STEP_M per step; none is ever left closer than PARTNER_HARD_GAP_M.
    """
    agents = [a for a in sim.agents if a.present]
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
            need = min(threshold, PARTNER_HARD_GAP_M if sim.partnered(a, b)
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
            weight_a = 1.0 if sim.mobile(a) else 0.0
            weight_b = 1.0 if sim.mobile(b) else 0.0
            if weight_a + weight_b == 0.0:
                weight_a = weight_b = 1.0
            share = weight_a / (weight_a + weight_b)
            new_a = a.pos + direction * push * share
            new_b = b.pos - direction * push * (1.0 - share)
            ok = sim.geometry.walkable(np.array([new_a, new_b]))
            if not ok[0] or not ok[1]:
                # One side is against a shelf or wall: the other takes the whole push.
                alone = [(a, a.pos + direction * push), (b, b.pos - direction * push)]
                alone_ok = sim.geometry.walkable(np.array([p for _, p in alone]))
                for (agent, point), fine in zip(alone, alone_ok, strict=True):
                    if fine:
                        agent.pos = point
                        break
                continue
            a.pos, b.pos = new_a, new_b
    for agent in agents:
        agent.velocity = (agent.pos - agent.previous_pos) / DT_S
        agent.previous_pos = agent.pos.copy()
