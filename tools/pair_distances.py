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
    closest = (np.inf, 0, (0, 0))
    started = time.perf_counter()
    for tick in simulation.run():
        if len(tick.bodies) < 2:
            continue
        pelvis = np.array([body.joints['pelvis'][:2] for body in tick.bodies])
        i, j = np.triu_indices(len(pelvis), 1)
        gaps = np.linalg.norm(pelvis[i] - pelvis[j], axis=1)
        counts += np.histogram(gaps, EDGES_M)[0]
        k = int(np.argmin(gaps))
        if gaps[k] < closest[0]:
            closest = (float(gaps[k]), tick.step,
                       (tick.bodies[i[k]].person_id, tick.bodies[j[k]].person_id))
    seconds = time.perf_counter() - started
    truth = simulation.truth
    print(f'{scenario.name} (seed {scenario.seed}, {scenario.duration_s:.0f} s, '
          f'{len(truth.people)} people): world run {seconds:.1f} s')
    print('pair-steps (60 Hz) by pelvis distance:')
    for low, high, count in zip(EDGES_M[:-1], EDGES_M[1:], counts, strict=True):
        print(f'  {low:4.2f}-{high:4.2f} m: {count}')
    print(f'closest: {closest[0]:.3f} m at step {closest[1]} (people {closest[2]})')
    print(f'behaviours: {truth.behaviour_counts}')
    inside = [p.person_id for p in truth.people if p.exit_ns is None]
    print(f'still inside at the end: {inside}')


def main(argv: list[str]) -> None:
    """Measure each named scenario."""
    for name in argv or ['busy']:
        path = pathlib.Path(name)
        if not path.suffix:
            path = REPO / 'config' / 'scenarios' / f'{name}.yaml'
        measure(path)


if __name__ == '__main__':
    main(sys.argv[1:])
