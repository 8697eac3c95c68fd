"""A tiny stand-in simulation (docs/simulation.md contract) used by the bag/replay tests.

It follows the interfaces of core/sim (``Simulation.run()`` ticks, ``truth``,
``Renderer.render``/``intrinsics``) with a few lines each, so the bag writer, the
player and the evaluation can be tested without the real simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import pathlib

import numpy as np

from go_store_nodes.core.store import StoreDescription

START_NS = 1_700_000_000 * 10 ** 9
FRAME_PERIOD_NS = 200_000_000          # 5 Hz camera frames
LOAD_CELL_PERIOD_NS = 200_000_000      # 5 Hz batches of 12 samples at 60 Hz
SAMPLE_PERIOD_NS = 16_666_667


@dataclass(frozen=True)
class FakeLoadCells:
    shelf_id: str
    bin_ids: tuple[str, ...]
    first_stamp_ns: int
    period_ns: int
    grams: np.ndarray


@dataclass(frozen=True)
class FakeCheckIn:
    gate_id: str
    token: str


@dataclass(frozen=True)
class FakeTick:
    stamp_ns: int
    bodies: tuple
    camera_frame: bool
    dropped_cameras: frozenset
    load_cells: tuple
    check_ins: tuple


class FakeSimulation:
    """Ticks every 100 ms for ``duration_s``: one check-in, load cells, camera frames."""

    def __init__(self, description: StoreDescription, duration_s: float = 2.0,
                 seed: int = 1) -> None:
        self.description = description
        self.duration_s = duration_s
        self.rng = np.random.default_rng(seed)
        self.truth: dict = {}

    def run(self):
        steps = int(round(self.duration_s / 0.1))
        shelf = self.description.shelves[0]
        bins = tuple(b.bin_id for b in shelf.bins)
        for i in range(steps + 1):
            stamp = START_NS + i * 100_000_000
            load_cells = ()
            if i % 2 == 0:
                grams = 1000.0 + self.rng.normal(0.0, 1.0, (12, len(bins)))
                load_cells = (FakeLoadCells(shelf.shelf_id, bins, stamp - 11 * SAMPLE_PERIOD_NS,
                                            SAMPLE_PERIOD_NS, grams),)
            yield FakeTick(stamp, (), i % 2 == 0,
                           frozenset({self.description.cameras[0].camera_id}) if i == 2
                           else frozenset(), load_cells,
                           (FakeCheckIn('gate_entry', 'token-1'),) if i == 1 else ())
        end = START_NS + steps * 100_000_000
        self.truth = fake_truth(end)


def fake_truth(end_ns: int) -> dict:
    return {'format': 1, 'scenario': 'fake', 'seed': 1, 'store': 'reference_store',
            'start_ns': START_NS, 'end_ns': end_ns, 'frame_period_ns': FRAME_PERIOD_NS,
            'people': [{'person_id': 1, 'role': 'shopper', 'account_id': 'acct_0001',
                        'party_id': 1, 'height_m': 1.7, 'enter_ns': START_NS,
                        'exit_ns': end_ns}],
            'frames': [{'stamp_ns': START_NS + k * FRAME_PERIOD_NS,
                        'people': [{'person_id': 1, 'x_m': 1.0 + 0.1 * k, 'y_m': 1.0,
                                    'joints': {}}]}
                       for k in range((end_ns - START_NS) // FRAME_PERIOD_NS + 1)],
            'events': [], 'check_ins': [{'stamp_ns': START_NS + 100_000_000,
                                         'gate_id': 'gate_entry', 'account_id': 'acct_0001',
                                         'person_ids': [1]}],
            'receipts': [{'account_id': 'acct_0001', 'lines': [], 'total_cents': 0}],
            'behaviour_counts': {}}


class FakeRenderer:
    """Constant images at a small scale: a depth ramp and a flat colour."""

    def __init__(self, description: StoreDescription, image_scale: float = 0.1) -> None:
        self.description = description
        self.image_scale = image_scale

    def intrinsics(self, camera_id: str):
        model = self.description.camera(camera_id).model

        def scaled(k):
            width = max(1, int(round(k.width * self.image_scale)))
            height = max(1, int(round(k.height * self.image_scale)))
            s = width / k.width
            return replace(k, width=width, height=height, fx=k.fx * s, fy=k.fy * s,
                           cx=(k.cx + 0.5) * s - 0.5, cy=(k.cy + 0.5) * s - 0.5)
        return scaled(model.depth), scaled(model.color)

    def render(self, camera_id, bodies, stamp_ns, extra=()):
        depth_k, color_k = self.intrinsics(camera_id)
        depth = np.tile(np.arange(depth_k.width, dtype=np.uint16) * 10 + 2000,
                        (depth_k.height, 1))
        color = np.full((color_k.height, color_k.width, 3), (120, 80, 40), dtype=np.uint8)
        return depth, color


def fake_truth_path(out) -> pathlib.Path:
    """Where write_fake_bag puts the truth of the bag folder ``out``: beside it."""
    out = pathlib.Path(out)
    return out.parent / f'{out.name}.truth.json'


def write_fake_bag(description: StoreDescription, out, duration_s: float = 2.0):
    from go_store_nodes.bagio.simulate import record_simulation
    return record_simulation(FakeSimulation(description, duration_s),
                             FakeRenderer(description), description, out,
                             fake_truth_path(out),
                             total_s=duration_s, custom_data={'go_store.scenario': 'fake'})


def test_fake_simulation_ticks_in_time_order(store_path):
    from go_store_nodes.core.store import load_store_description
    simulation = FakeSimulation(load_store_description(store_path), 1.0)
    stamps = [tick.stamp_ns for tick in simulation.run()]
    assert stamps == sorted(stamps) and len(stamps) == 11
    assert simulation.truth['format'] == 1
