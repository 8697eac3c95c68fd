"""Print the histogram of pelvis-to-pelvis distances of a scenario's world run.

Usage: python tools/pair_distances.py [SCENARIO ...]   (tier names or YAML paths;
default: busy). Runs the world alone (no rendering) and counts, over every 60 Hz step,
the pairs of people present with pelvises closer than 1 m, in bins; also reports the
closest pair, the behaviour counts and who was still inside at the end.
"""

from __future__ import annotations

import pathlib
import sys
import time

import numpy as np

from go_store_nodes.core.sim.scenario import load_scenario
from go_store_nodes.core.sim.world import Simulation
from go_store_nodes.core.store import load_store_description

EDGES_M = (0.0, 0.2, 0.3, 0.45, 0.6, 1.0)
REPO = pathlib.Path(__file__).resolve().parent.parent


def measure(path: pathlib.Path) -> None:
    """Run one scenario and print its pair-distance histogram."""
    scenario = load_scenario(path)
    simulation = Simulation(scenario, load_store_description(scenario.store_path))
    counts = np.zeros(len(EDGES_M) - 1, dtype=int)
    inside_counts = np.zeros(len(EDGES_M) - 1, dtype=int)
    size = np.array(simulation.store.size_m)
    first_step: dict[int, int] = {}
    closest = (np.inf, 0, (0, 0))
    started = time.perf_counter()
    for tick in simulation.run():
        for body in tick.bodies:
            first_step.setdefault(body.person_id, tick.step)
        if len(tick.bodies) < 2:
            continue
        pelvis = np.array([body.joints['pelvis'][:2] for body in tick.bodies])
        i, j = np.triu_indices(len(pelvis), 1)
        gaps = np.linalg.norm(pelvis[i] - pelvis[j], axis=1)
        counts += np.histogram(gaps, EDGES_M)[0]
        inside = np.all((pelvis > 0.0) & (pelvis < size), axis=1)
        inside_counts += np.histogram(gaps[inside[i] & inside[j]], EDGES_M)[0]
        k = int(np.argmin(gaps))
        if gaps[k] < closest[0]:
            closest = (float(gaps[k]), tick.step,
                       (tick.bodies[i[k]].person_id, tick.bodies[j[k]].person_id))
    seconds = time.perf_counter() - started
    truth = simulation.truth
    print(f'{scenario.name} (seed {scenario.seed}, {scenario.duration_s:.0f} s, '
          f'{len(truth.people)} people): world run {seconds:.1f} s')
    print('pair-steps (60 Hz) by pelvis distance: everyone / both inside the walls')
    for low, high, count, inside_count in zip(EDGES_M[:-1], EDGES_M[1:], counts,
                                              inside_counts, strict=True):
        print(f'  {low:4.2f}-{high:4.2f} m: {count:7d} / {inside_count:7d}')
    print(f'closest: {closest[0]:.3f} m at step {closest[1]} (people {closest[2]})')
    print(f'behaviours: {truth.behaviour_counts}')
    still = [p.person_id for p in truth.people if p.exit_ns is None]
    print(f'still inside at the end: {still}')
    waits = [(p.enter_ns - truth.start_ns) / 1e9 - first_step[p.person_id] / 60.0
             for p in truth.people if p.role == 'shopper']
    if waits:
        print(f'shoppers from appearing outside to stepping in: median '
              f'{np.median(waits):.1f} s, max {max(waits):.1f} s')
    scans = [c.stamp_ns for c in truth.check_ins]
    if scans:
        print(f'last scan at {(max(scans) - truth.start_ns) / 1e9:.0f} s of '
              f'{scenario.duration_s:.0f} s')


def main(argv: list[str]) -> None:
    """Measure each named scenario."""
    for name in argv or ['busy']:
        path = pathlib.Path(name)
        if not path.suffix:
            path = REPO / 'config' / 'scenarios' / f'{name}.yaml'
        measure(path)


if __name__ == '__main__':
    main(sys.argv[1:])
