"""Floor geometry of the simulated store: walls, shelf footprints, doors, path planning.

People walk on paths planned on a visibility graph around the shelves (footprints from
the store description, inflated by ``INFLATION_M``); doors are gaps in the store wall at
the entry and exit gates.
"""

from __future__ import annotations

from dataclasses import dataclass
import heapq
from typing import Sequence

import numpy as np
from numpy.typing import NDArray

from ..store import Gate, StoreDescription

INFLATION_M = 0.40            # path clearance from shelf footprints
NODE_INFLATION_M = 0.45       # visibility-graph corner nodes sit just outside it
WALL_MARGIN_M = 0.30          # keep people this far inside the store walls
BODY_CLEARANCE_M = 0.15       # a pelvis never comes closer to a shelf footprint
DOOR_HALF_WIDTH_M = 0.5       # doors in the store wall at the entry and exit gates


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
