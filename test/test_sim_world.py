"""The simulated world: determinism, physical plausibility, sensors, check-ins and truth.

Most checks run on one full ``busy`` run (every hard behaviour; a few seconds).
"""

from collections import defaultdict
import dataclasses
import hashlib
import math

import numpy as np
import pytest

from go_store_nodes.core.evaluation import parse_truth
from go_store_nodes.core.evaluation.metrics import shelf_truth_events
from go_store_nodes.core.ledger.tokens import load_public_key, TokenVerifier
from go_store_nodes.core.sim.scenario import BEHAVIOURS, load_scenario
from go_store_nodes.core.sim.truth import compute_receipts, Truth
from go_store_nodes.core.sim.world import Geometry, Simulation, STEP_HZ, TANGLE_CONTACT_M
from go_store_nodes.core.store import load_store_description


@dataclasses.dataclass
class Run:
    scenario: object
    store: object
    truth: Truth
    ticks: int
    camera_steps: list
    dropped: int
    batches: dict
    check_ins: list
    digest: str
    simulation: object = None
    captures: list = dataclasses.field(default_factory=list)    # (step, stamp, capture)
    lost: list = dataclasses.field(default_factory=list)        # (step, stamp, camera_id)
    closest_m: float = math.inf                        # pelvis to pelvis, any step
    pair_histogram: dict = dataclasses.field(default_factory=dict)   # bin -> pair-steps
    first_xy: dict = dataclasses.field(default_factory=dict)         # person -> (step, xy)
    last_xy: dict = dataclasses.field(default_factory=dict)


PAIR_BINS_M = (0.0, 0.2, 0.3, 0.45, 0.6, 1.0)


def _run(scenario, store=None):
    store = store or load_store_description(scenario.store_path)
    simulation = Simulation(scenario, store)
    digest = hashlib.sha256()
    batches = defaultdict(list)
    check_ins = []
    camera_steps = []
    dropped = 0
    ticks = 0
    captures, lost = [], []
    closest = math.inf
    histogram = np.zeros(len(PAIR_BINS_M) - 1, dtype=int)
    first_xy, last_xy = {}, {}
    for tick in simulation.run():
        ticks += 1
        pelvis = np.array([body.joints['pelvis'][:2] for body in tick.bodies]).reshape(-1, 2)
        for body, xy in zip(tick.bodies, pelvis, strict=True):
            first_xy.setdefault(body.person_id, (tick.step, xy))
            last_xy[body.person_id] = (tick.step, xy)
        if len(pelvis) > 1:
            i, j = np.triu_indices(len(pelvis), 1)
            gaps = np.linalg.norm(pelvis[i] - pelvis[j], axis=1)
            closest = min(closest, float(gaps.min()))
            histogram += np.histogram(gaps, PAIR_BINS_M)[0]
        digest.update(str(tick.stamp_ns).encode())
        for body in tick.bodies:
            digest.update(np.stack([body.joints[n] for n in sorted(body.joints)]).tobytes())
        for batch in tick.load_cells:
            batches[batch.shelf_id].append(batch)
            digest.update(batch.grams.tobytes())
        for check_in in tick.check_ins:
            check_ins.append((tick.stamp_ns, check_in))
            digest.update(check_in.token.encode())
        if tick.camera_frame:
            camera_steps.append(tick.step)
        dropped += len(tick.dropped_cameras)
        digest.update(','.join(sorted(tick.dropped_cameras)).encode())
        lost.extend((tick.step, tick.stamp_ns, c) for c in sorted(tick.dropped_cameras))
        for capture in tick.captures:
            captures.append((tick.step, tick.stamp_ns, capture))
            digest.update(f'{capture.camera_id}{capture.stamp_ns}{capture.arrival_ns}'.encode())
    bins = [f'{low:.2f}-{high:.2f} m' for low, high in zip(PAIR_BINS_M[:-1], PAIR_BINS_M[1:],
                                                             strict=True)]
    pair_histogram = dict(zip(bins, histogram.tolist(), strict=True))
    return Run(scenario, store, simulation.truth, ticks, camera_steps, dropped, dict(batches),
               check_ins, digest.hexdigest(), simulation, captures, lost, closest,
               pair_histogram, first_xy, last_xy)


@pytest.fixture(scope='module')
def busy(repo):
    return _run(load_scenario(repo / 'config' / 'scenarios' / 'busy.yaml'))


@pytest.fixture(scope='module')
def smoke_scenario(repo):
    return load_scenario(repo / 'config' / 'scenarios' / 'smoke.yaml')


def _series(run, shelf_id, bin_id):
    """Stamps (ns) and grams of one bin's load cell over the run."""
    batches = run.batches[shelf_id]
    column = batches[0].bin_ids.index(bin_id)
    stamps = np.concatenate([b.first_stamp_ns + np.arange(12) * b.period_ns for b in batches])
    return stamps, np.concatenate([b.grams[:, column] for b in batches])


def _tracks(truth):
    tracks = defaultdict(list)
    for frame in truth.frames:
        for person in frame.people:
            tracks[person.person_id].append((frame.stamp_ns, person))
    return tracks


# ----------------------------------------------------------------------- determinism


def test_same_seed_same_ticks_and_truth(smoke_scenario):
    first = _run(smoke_scenario)
    second = _run(smoke_scenario)
    assert first.digest == second.digest
    assert first.truth.to_json() == second.truth.to_json()
    assert first.truth.events, 'the smoke shopper picks something'


def test_different_seed_different_run(smoke_scenario):
    first = _run(smoke_scenario)
    other = _run(dataclasses.replace(smoke_scenario, seed=smoke_scenario.seed + 1))
    assert first.digest != other.digest
    assert first.truth.to_json() != other.truth.to_json()


def test_smoke_run_shape(smoke_scenario):
    run = _run(smoke_scenario)
    truth = run.truth
    assert run.ticks == 60 * STEP_HZ
    assert truth.end_ns - truth.start_ns == pytest.approx(60e9 - 1e9 / 60, abs=1)
    assert truth.start_ns == 1_700_000_000 * 10 ** 9
    assert [p.role for p in truth.people] == ['shopper']
    assert truth.people[0].exit_ns is not None, 'the shopper leaves before the end'
    assert all(v == 0 for v in truth.behaviour_counts.values())
    assert len(truth.check_ins) == 1 and len(run.check_ins) == 1


def test_camera_rate_follows_the_scenario(smoke_scenario):
    run = _run(dataclasses.replace(
        smoke_scenario, duration_s=5.0,
        render=dataclasses.replace(smoke_scenario.render, camera_fps=10.0)))
    assert run.camera_steps == list(range(0, 300, 6))
    assert run.truth.frame_period_ns == 100_000_000
    assert len(run.truth.frames) == 50


def test_camera_fps_above_the_model_is_refused(smoke_scenario):
    store = load_store_description(smoke_scenario.store_path)
    scenario = dataclasses.replace(
        smoke_scenario, render=dataclasses.replace(smoke_scenario.render, camera_fps=30.0))
    with pytest.raises(ValueError, match='camera_fps'):
        Simulation(scenario, store)


# ----------------------------------------------------------------------- behaviours


def test_busy_has_every_hard_behaviour(busy):
    counts = busy.truth.behaviour_counts
    assert set(counts) == set(BEHAVIOURS)
    assert all(counts[name] > 0 for name in BEHAVIOURS), counts


def test_crowd_has_every_hard_behaviour(repo):
    crowd = load_scenario(repo / 'config' / 'scenarios' / 'crowd.yaml')
    simulation = Simulation(crowd, load_store_description(crowd.store_path))
    for _ in simulation.run():
        pass
    counts = simulation.truth.behaviour_counts
    assert all(counts[name] > 0 for name in BEHAVIOURS), counts


def test_behaviour_counts_match_events_and_episodes(busy):
    truth = busy.truth
    kinds = defaultdict(int)
    for event in truth.events:
        kinds[event.kind] += 1
    assert truth.behaviour_counts['hand_off'] == kinds['hand_off']
    assert truth.behaviour_counts['restock'] == kinds['restock']
    assert truth.behaviour_counts['return_same_bin'] + \
        truth.behaviour_counts['return_other_bin'] == kinds['return']
    for name in ('group_entry', 'shared_reach', 'tangled'):
        assert truth.behaviour_counts[name] == sum(e.behaviour == name for e in truth.episodes)
    assert truth.behaviour_counts['touch_no_pick'] == len(truth.touches)


# ----------------------------------------------------------------------- plausibility


def test_speeds_within_bounds(busy):
    cruising = []
    for track in _tracks(busy.truth).values():
        stamps = np.array([s for s, _ in track]) / 1e9
        xy = np.array([[p.x_m, p.y_m] for _, p in track])
        speed = np.linalg.norm(np.diff(xy, axis=0), axis=1) / np.diff(stamps)
        assert speed.max() < 1.6, speed.max()
        cruising.extend(speed[speed > 0.3])
    cruising = np.array(cruising)
    assert 0.5 < np.median(cruising) < 1.4
    assert np.percentile(cruising, 99) <= 1.45


def test_nobody_walks_through_shelves(busy):
    geometry = Geometry(busy.store)
    worst = min(geometry.distance(np.array([p.x_m, p.y_m]))
                for frame in busy.truth.frames for p in frame.people)
    assert worst >= 0.15
    size = busy.store.size_m
    for frame in busy.truth.frames:
        for p in frame.people:
            assert 0.0 < p.x_m < size[0] and 0.0 < p.y_m < size[1]


def test_heights_and_joints_in_range(busy):
    heights = {p.person_id: p.height_m for p in busy.truth.people}
    assert all(1.5 <= h <= 1.95 for h in heights.values())
    for frame in busy.truth.frames[::15]:
        for p in frame.people:
            head = p.joints['head'][2]
            assert heights[p.person_id] * 0.55 < head <= heights[p.person_id]
            assert 0.0 < p.joints['left_foot'][2] < 0.2
            for hand in ('left_hand', 'right_hand'):
                assert 0.0 < p.joints[hand][2] < 2.0


def test_hands_reach_the_bins_they_use(busy):
    truth = busy.truth
    bins = busy.store.bins()
    shelves = {s.shelf_id: s for s in busy.store.shelves}
    frames = {f.stamp_ns: f for f in truth.frames}
    stamps = np.array(sorted(frames))
    checked = 0
    for event in (*truth.events, *truth.touches):
        if event.bin_id is None:
            continue
        frame = frames[int(stamps[np.argmin(np.abs(stamps - event.stamp_ns))])]
        person = next(p for p in frame.people if p.person_id == event.person_id)
        box = bins[event.bin_id]
        to_shelf = shelves[event.shelf_id].t_map_shelf.inverse()
        inside = [np.all(q >= np.array(box.min_m) - 0.01) and np.all(q <= np.array(box.max_m)
                                                                     + 0.01)
                  for q in (to_shelf.apply(person.joints[h]) for h in ('left_hand',
                                                                       'right_hand'))]
        assert any(inside), event
        checked += 1
    assert checked > 30


def test_people_use_the_gates(busy):
    gates = {g.kind: g for g in busy.store.gates}
    roles = {p.person_id: p for p in busy.truth.people}

    def near(gate, p, margin=0.35):
        return gate.min_m[0] - margin <= p.x_m <= gate.max_m[0] + margin and \
            gate.min_m[1] - margin <= p.y_m <= gate.max_m[1] + margin

    for pid, track in _tracks(busy.truth).items():
        person = roles[pid]
        enter, leave = ('entry', 'exit') if person.role == 'shopper' else ('staff', 'staff')
        assert near(gates[enter], track[0][1]), (pid, track[0])
        if person.exit_ns is not None:
            assert near(gates[leave], track[-1][1]), (pid, track[-1])
    assert sum(p.exit_ns is not None for p in busy.truth.people) >= len(busy.truth.people) - 1


def test_nobody_walks_through_anybody(busy):
    # Every pair of people at every 60 Hz step, inside the store and outside its doors.
    print(f'\nbusy pair-steps by pelvis distance: {busy.pair_histogram}; '
          f'closest {busy.closest_m:.3f} m')
    assert busy.closest_m >= 0.2
    assert busy.pair_histogram['0.00-0.20 m'] == 0
    assert busy.pair_histogram['0.30-0.45 m'] > 0, 'people still come close (tangles)'


def test_everyone_finishes_and_leaves_in_time(busy):
    # No standstill lasts: every shopper works through the list and walks out.
    people = busy.truth.people
    assert all(p.exit_ns is not None for p in people if p.role == 'shopper'), people
    assert busy.truth.end_ns - max(p.exit_ns for p in people if p.exit_ns) > 2e9
    assert sum(e.kind == 'pick' for e in busy.truth.events) >= 2 * busy.scenario.shoppers.count


def test_shoppers_come_in_and_go_out_through_the_doors(busy):
    geometry = Geometry(busy.store)
    entry = geometry.doors['gate_entry']
    exit_door = geometry.doors['gate_exit']
    size = np.array(busy.store.size_m)
    for person in busy.truth.people:
        step, xy = busy.first_xy[person.person_id]
        if person.role == 'associate':
            assert np.all(xy > 0) and np.all(xy < size)
            continue
        # Appears outside, beyond the entry door, well before stepping in.
        u, v = entry.coordinates(xy)
        assert v[0] > 2.0 and abs(u[0]) < 1.5, (person, xy)
        assert person.enter_ns > busy.truth.start_ns + step * 1e9 / STEP_HZ
        if person.exit_ns is not None:
            last_step, last = busy.last_xy[person.person_id]
            u, v = exit_door.coordinates(last)
            assert v[0] > 2.0 and abs(u[0]) < 1.5, (person, last)
            assert busy.truth.start_ns + last_step * 1e9 / STEP_HZ > person.exit_ns
    # Truth frames hold people inside the walls only.
    for frame in busy.truth.frames:
        for p in frame.people:
            assert 0.0 < p.x_m < size[0] and 0.0 < p.y_m < size[1]


def test_scan_comes_after_the_holder_reaches_the_scanner(busy):
    tracks = {pid: dict(t) for pid, t in _tracks(busy.truth).items()}
    gate = next(g for g in busy.store.gates if g.gate_id == 'gate_entry')
    low, high = busy.scenario.entry.scan_delay_s
    period = busy.truth.frame_period_ns
    for check_in in busy.truth.check_ins:
        holder = tracks[check_in.person_ids[0]]
        stamps = np.array(sorted(holder))
        at_scan = holder[int(stamps[stamps <= check_in.stamp_ns][-1])]
        assert gate.min_m[0] <= at_scan.x_m <= gate.max_m[0]
        assert gate.min_m[1] <= at_scan.y_m <= gate.max_m[1]
        # Standing at the scanner since at least the shortest delay before the scan ...
        still = [s for s in stamps if check_in.stamp_ns - low * 1e9 + period <= s
                 <= check_in.stamp_ns]
        assert still and all(math.hypot(holder[s].x_m - at_scan.x_m,
                                         holder[s].y_m - at_scan.y_m) < 0.05 for s in still)
        # ... and it was walking (not yet there) before the longest delay.
        before = [s for s in stamps if s < check_in.stamp_ns - (high + 0.5) * 1e9]
        assert not before or math.hypot(holder[before[-1]].x_m - at_scan.x_m,
                                        holder[before[-1]].y_m - at_scan.y_m) > 0.05


def test_tailgaters_walk_in_behind_a_scan_without_an_account(busy):
    truth = busy.truth
    people = {p.person_id: p for p in truth.people}
    episodes = [e for e in truth.episodes if e.behaviour == 'tailgating']
    tailgaters = {pid for c in truth.check_ins for pid in c.tailgater_ids}
    assert episodes and len(episodes) == truth.behaviour_counts['tailgating']
    assert {e.person_ids[0] for e in episodes} == tailgaters
    gate = next(g for g in busy.store.gates if g.gate_id == 'gate_entry')
    tracks = _tracks(truth)
    for check_in in (c for c in truth.check_ins if c.tailgater_ids):
        for pid in check_in.tailgater_ids:
            person = people[pid]
            assert pid not in check_in.person_ids
            assert person.role == 'shopper' and person.account_id is None
            assert person.party_id is None
            episode = next(e for e in episodes if e.person_ids == (pid,))
            assert episode.start_ns == check_in.stamp_ns < episode.end_ns
            assert episode.end_ns - episode.start_ns < 2e9
            # Behind that scan: in the entry gate zone after it and before the next scan
            # (crowd at the door permitting, within 15 s), so no other scan explains them.
            later = [c.stamp_ns for c in truth.check_ins
                     if c.gate_id == check_in.gate_id and c.stamp_ns > check_in.stamp_ns]
            until = min([check_in.stamp_ns + 15e9, *later])
            in_zone = [s for s, p in tracks[pid] if gate.min_m[0] <= p.x_m <= gate.max_m[0]
                       and gate.min_m[1] <= p.y_m <= gate.max_m[1]]
            assert any(check_in.stamp_ns <= s <= until for s in in_zone), (pid, check_in)
    # No account, no receipt; its picks are nobody's.
    accounts = {r.account_id for r in truth.receipts}
    assert all(e.account_id is None for e in truth.events if e.person_id in tailgaters)
    assert None not in accounts


def test_tangled_people_walk_in_contact(busy):
    tracks = {pid: dict(t) for pid, t in _tracks(busy.truth).items()}
    for episode in (e for e in busy.truth.episodes if e.behaviour == 'tangled'):
        a, b = episode.person_ids
        close = [math.hypot(pa.x_m - tracks[b][s].x_m, pa.y_m - tracks[b][s].y_m)
                 for s, pa in tracks[a].items()
                 if episode.start_ns <= s <= episode.end_ns and s in tracks[b]]
        assert episode.end_ns - episode.start_ns >= 1.4e9
        # Touching (about 0.3 m between pelvises), never through each other.
        assert 0.25 <= np.median(close) < TANGLE_CONTACT_M
        assert min(close) >= 0.2


def test_shared_reaches_overlap_on_one_shelf(busy):
    events = [e for e in busy.truth.events if 'shared_reach' in e.behaviours]
    for episode in (e for e in busy.truth.episodes if e.behaviour == 'shared_reach'):
        mine = [e for e in events if e.person_id in episode.person_ids
                and episode.start_ns <= e.stamp_ns <= episode.end_ns]
        assert len({e.person_id for e in mine}) == 2
        assert len({e.shelf_id for e in mine}) == 1
        assert max(e.start_ns for e in mine) < min(e.end_ns for e in mine)


def test_returns_hand_offs_and_restocks(busy):
    truth = busy.truth
    people = {p.person_id: p for p in truth.people}
    bins = busy.store.bins()
    shelf_of = {b.bin_id: b.shelf_id for b in bins.values()}
    for event in truth.events:
        if event.kind == 'hand_off':
            assert people[event.person_id].party_id == people[event.to_person_id].party_id
            assert event.account_id == people[event.to_person_id].account_id
        elif event.kind == 'restock':
            assert people[event.person_id].role == 'associate'
            assert event.account_id is None and event.delta_grams > 0
        elif event.kind == 'return':
            assert event.delta_grams > 0
            pick = [e for e in truth.events if e.kind == 'pick' and e.sku == event.sku
                    and e.person_id == event.person_id and e.stamp_ns < event.stamp_ns]
            assert pick
            if pick[-1].quantity == event.quantity:
                assert event.delta_grams == -pick[-1].delta_grams     # the same unit back
            if 'return_other_bin' in event.behaviours:
                assert shelf_of[event.bin_id] != pick[-1].shelf_id
            else:
                assert event.bin_id == pick[-1].bin_id
        else:
            assert event.delta_grams < 0
            assert event.sku in bins[event.bin_id].skus


# ----------------------------------------------------------------------- sensors


def test_load_cell_settled_deltas_equal_unit_weights(busy):
    truth = busy.truth
    checked = 0
    for event in truth.events:
        if event.bin_id is None:
            continue
        crowded = any(o is not event and o.bin_id == event.bin_id
                      and abs(o.stamp_ns - event.stamp_ns) < 4e9
                      for o in (*truth.events, *truth.touches))
        if crowded:
            continue
        stamps, grams = _series(busy, event.shelf_id, event.bin_id)
        before = np.median(grams[(stamps > event.start_ns - 1.0e9)
                                 & (stamps < event.start_ns - 0.3e9)])
        after = np.median(grams[(stamps > event.end_ns + 0.5e9)
                                & (stamps < event.end_ns + 1.2e9)])
        during = grams[(stamps >= event.start_ns) & (stamps <= event.end_ns)]
        assert after - before == pytest.approx(event.delta_grams, abs=8.0), event
        assert np.max(np.abs(during - before)) > 50.0          # pressing transient
        product = busy.store.product(event.sku)
        assert abs(abs(event.delta_grams) - product.unit_weight_g * event.quantity) <= \
            product.weight_tolerance_g * event.quantity + 1e-9
        checked += 1
    assert checked > 20


def test_units_differ_within_the_catalog_tolerance(busy):
    simulation = busy.simulation
    spread = defaultdict(list)
    for units in simulation.units.values():
        for sku, weights in units.items():
            product = busy.store.product(sku)
            for weight in weights:
                assert abs(weight - product.unit_weight_g) <= product.weight_tolerance_g
                spread[sku].append(weight - product.unit_weight_g)
    deviations = np.concatenate([np.asarray(v) / busy.store.product(sku).weight_tolerance_g
                                 for sku, v in spread.items()])
    assert len(deviations) > 300
    assert abs(np.mean(deviations)) < 0.05
    assert 0.4 < np.std(deviations) < 0.55          # sigma = tolerance / 2, clipped
    picks = [e for e in busy.truth.events if e.kind == 'pick' and e.quantity == 1]
    assert len({(e.sku, e.delta_grams) for e in picks}) > len({e.sku for e in picks})


def test_shelf_weight_is_tare_plus_the_units_left(busy):
    simulation = busy.simulation
    cells = simulation.loadcells
    for bin_id, units in simulation.units.items():
        expected = simulation.tare_g[bin_id] + sum(sum(w) for w in units.values())
        assert cells.true_g[cells.index(bin_id)] == pytest.approx(expected, abs=1e-6)
        counts = {sku: n for sku, n in simulation.stock[bin_id].items() if n}
        assert counts == {sku: len(w) for sku, w in units.items() if w}


def test_weight_changes_ramp_inside_the_contact(busy):
    cells = busy.simulation.loadcells
    start_ns = busy.truth.start_ns
    by_bin = defaultdict(list)
    for change in cells.history:
        by_bin[change.bin_id].append(change)
    durations = []
    for event in busy.truth.events:
        if event.kind not in ('pick', 'return'):
            continue
        mine = [c for c in by_bin[event.bin_id]
                if abs(c.delta_g - event.delta_grams) < 1e-3
                and event.start_ns <= start_ns + c.start_step * 1e9 / STEP_HZ <= event.end_ns]
        assert len(mine) == 1, event
        change = mine[0]
        assert start_ns + (change.start_step + change.steps - 1) * 1e9 / STEP_HZ \
            <= event.end_ns + 1
        durations.append(change.steps / STEP_HZ)
    assert min(durations) >= 0.2 - 1e-9 and max(durations) <= 0.8 + 1e-9
    assert np.ptp(durations) > 0.2                  # drawn per event


def test_touches_take_nothing(busy):
    truth = busy.truth
    assert truth.touches
    assert all(event.kind != 'touch' for event in truth.events)
    accounts = {p.person_id: p.account_id for p in truth.people}
    for touch in truth.touches:
        assert touch.account_id == accounts[touch.person_id]    # None for a tailgater
        assert touch.start_ns < touch.stamp_ns < touch.end_ns
    # Evaluation never expects a touch as a shelf event or a cart line.
    expected = parse_truth(truth.to_dict())
    assert len(shelf_truth_events(expected)) == sum(
        e.kind in ('pick', 'return', 'restock') for e in truth.events)
    touch_windows = {(t.bin_id, t.start_ns) for t in truth.touches}
    assert not touch_windows & {(e.bin_id, e.start_ns) for e in expected.events}
    # Every touch moves no weight for good: a lift and its put-back cancel exactly.
    cells = busy.simulation.loadcells

    def steps(item):
        return (round((item.start_ns - truth.start_ns) * STEP_HZ / 1e9),
                round((item.end_ns - truth.start_ns) * STEP_HZ / 1e9))

    def during(item):
        first, last = steps(item)
        return [c for c in cells.history
                if c.bin_id == item.bin_id and first <= c.start_step <= last]

    of_events = {id(c) for e in truth.events if e.bin_id for c in during(e)}
    for touch in truth.touches:
        if any(e.bin_id == touch.bin_id and e.start_ns <= touch.end_ns
               and touch.start_ns <= e.end_ns for e in truth.events):
            continue              # overlaps a pick/restock of the same bin: not separable
        moves = [c.delta_g for c in during(touch) if id(c) not in of_events]
        assert sum(moves) == pytest.approx(0.0, abs=1e-9)
        assert sorted(moves) == pytest.approx([-touch.lifted_grams, touch.lifted_grams]
                                              if touch.lifted_grams else [], abs=1e-3), touch
    lifted, pressed = 0, 0
    for touch in truth.touches:
        if any(o is not touch and o.bin_id == touch.bin_id
               and abs(o.stamp_ns - touch.stamp_ns) < 4e9
               for o in (*truth.events, *truth.touches)):
            continue
        stamps, grams = _series(busy, touch.shelf_id, touch.bin_id)
        before = np.median(grams[(stamps > touch.start_ns - 1.0e9)
                                 & (stamps < touch.start_ns - 0.3e9)])
        after = np.median(grams[(stamps > touch.end_ns + 0.5e9)
                                & (stamps < touch.end_ns + 1.2e9)])
        during = grams[(stamps >= touch.start_ns) & (stamps <= touch.end_ns)] - before
        assert after - before == pytest.approx(0.0, abs=8.0), touch
        if touch.lifted_grams:
            product = busy.store.product(touch.sku)
            assert abs(touch.lifted_grams - product.unit_weight_g) <= product.weight_tolerance_g
            assert during.min() < -0.5 * touch.lifted_grams      # the unit leaves the plate
            lifted += 1
        else:
            assert during.max() > 50.0                           # a press only
            pressed += 1
    assert lifted + pressed >= 2


def test_load_cell_batches_and_frame_drops(busy):
    duration = busy.scenario.duration_s
    for shelf in busy.store.shelves:
        batches = busy.batches[shelf.shelf_id]
        assert abs(len(batches) - duration * 5) <= 1
        assert batches[0].grams.shape == (12, len(shelf.bins))
    frames = len(busy.camera_steps) * len(busy.store.cameras)
    assert len(busy.camera_steps) == duration * 15
    # Every camera takes every frame, on its own phase: delivered + lost.
    assert len(busy.captures) + busy.dropped == frames
    counts = busy.truth.sensor_counts
    assert counts['camera_frames_dropped'] + counts['camera_frames_outage'] == busy.dropped
    rate = counts['camera_frames_dropped'] / frames
    assert rate == pytest.approx(busy.scenario.sensors.camera_frame_drop, rel=0.3)


def _outage_of(truth, camera_id, stamp_ns):
    return any(o.camera_id == camera_id and o.start_ns <= stamp_ns < o.end_ns
               for o in truth.camera_outages)


def test_frame_drops_come_in_bursts(busy):
    period = 4                                       # steps per frame at 15 fps
    runs = []
    for camera in busy.store.cameras:
        steps = sorted(step for step, stamp, c in busy.lost
                       if c == camera.camera_id and not _outage_of(busy.truth, c, stamp))
        length = 0
        for index, step in enumerate(steps):
            length += 1
            if index + 1 == len(steps) or steps[index + 1] != step + period:
                runs.append(length)
                length = 0
    mean = float(np.mean(runs))
    assert mean == pytest.approx(busy.scenario.sensors.camera_drop_burst_frames, rel=0.35)
    assert max(runs) >= 5


def test_camera_outages_are_behaviours_and_silence_the_camera(busy):
    truth = busy.truth
    assert truth.behaviour_counts['camera_outage'] == len(truth.camera_outages) >= 1
    cameras = {c.camera_id for c in busy.store.cameras}
    for outage in truth.camera_outages:
        assert outage.camera_id in cameras
        assert 3e9 <= outage.end_ns - outage.start_ns <= 8e9
        assert truth.start_ns <= outage.start_ns < truth.end_ns
        inside = [c for step, stamp, c in busy.captures
                  if c.camera_id == outage.camera_id and outage.start_ns <= stamp < outage.end_ns]
        assert inside == []
        lost = [stamp for stamp, step, c in ((s, k, c) for k, s, c in busy.lost)
                if c == outage.camera_id and outage.start_ns <= stamp < outage.end_ns]
        assert len(lost) >= 15 * 3 - 1
    assert truth.sensor_counts['camera_frames_outage'] >= 44


def test_crowd_has_a_camera_outage(repo):
    scenario = load_scenario(repo / 'config' / 'scenarios' / 'crowd.yaml')
    simulation = Simulation(scenario, load_store_description(scenario.store_path))
    simulation._reset()
    assert len(simulation.cameras.outages) >= 1


def test_camera_timing_switched_off_gives_aligned_frames(smoke_scenario):
    sensors = dataclasses.replace(
        smoke_scenario.sensors, camera_clock_offset_ms=0.0, camera_clock_drift_ppm=0.0,
        camera_latency_ms=0.0, camera_latency_jitter_ms=0.0, camera_capture_phase=False)
    run = _run(dataclasses.replace(smoke_scenario, duration_s=3.0, sensors=sensors))
    cameras = len(run.store.cameras)
    assert sorted({step for step, _, _ in run.captures}) == run.camera_steps
    assert len(run.captures) == cameras * len(run.camera_steps)
    assert all(c.stamp_ns == stamp == c.arrival_ns for _, stamp, c in run.captures)


def test_camera_clocks_latency_and_phases(busy):
    truth = busy.truth
    sensors = busy.scenario.sensors
    clocks = {c.camera_id: c for c in truth.camera_clocks}
    assert set(clocks) == {c.camera_id for c in busy.store.cameras}
    by_camera = defaultdict(list)
    for step, stamp, capture in busy.captures:
        by_camera[capture.camera_id].append((step, stamp, capture))
    phases = set()
    for camera_id, frames in by_camera.items():
        clock = clocks[camera_id]
        phases.add(frames[0][0] % 4)
        assert all(step % 4 == clock.phase_steps for step, _, _ in frames)
        arrivals = [c.arrival_ns for _, _, c in frames]
        assert arrivals == sorted(arrivals) and len(set(arrivals)) == len(arrivals)
        for _, stamp, capture in frames:
            # Header stamp = true capture + offset + drift * elapsed (camera clock).
            elapsed = stamp - truth.start_ns
            assert capture.stamp_ns == stamp + clock.offset_ns + round(
                clock.drift_ppm * 1e-6 * elapsed)
            latency = capture.arrival_ns - stamp
            assert 0.75 * sensors.camera_latency_ms * 1e6 - 1 <= latency
            assert latency <= 1.25 * sensors.camera_latency_ms * 1e6 + 100e6
        assert abs(clock.offset_ns) <= sensors.camera_clock_offset_ms * 1e6
        assert abs(clock.drift_ppm) <= sensors.camera_clock_drift_ppm
    # Not aligned across cameras: several phases, offsets and latencies.
    assert len(phases) >= 3
    assert len({c.offset_ns for c in clocks.values()}) == len(clocks)
    offsets_ms = [c.offset_ns / 1e6 for c in clocks.values()]
    assert max(offsets_ms) - min(offsets_ms) > 5.0


# ----------------------------------------------------------------------- money


def test_check_ins_are_signed_tokens_of_the_party(busy, repo):
    verifier = TokenVerifier(load_public_key(repo / 'config' / 'demo_keys' /
                                             'store_app_public.pem'))
    truth = busy.truth
    by_account = {c.account_id: c for c in truth.check_ins}
    assert len(busy.check_ins) == len(truth.check_ins) == busy.scenario.shoppers.count
    for stamp_ns, data in busy.check_ins:
        token = verifier.verify(data.token, stamp_ns)
        assert token.account_id == data.account_id
        assert data.gate_id == 'gate_entry'
        members = [p.person_id for p in truth.people if p.account_id == data.account_id]
        assert list(by_account[data.account_id].person_ids) == members
    groups = [c for c in truth.check_ins if len(c.person_ids) > 1]
    assert len(groups) == truth.behaviour_counts['group_entry']


def test_receipts_are_picks_minus_returns(busy):
    truth = busy.truth
    accounts = sorted({p.account_id for p in truth.people if p.account_id})
    assert [r.account_id for r in truth.receipts] == accounts
    prices = {sku: product.price_cents for sku, product in busy.store.catalog.items()}
    for receipt in truth.receipts:
        held = defaultdict(int)
        for event in truth.events:
            if event.account_id == receipt.account_id:
                held[event.sku] += {'pick': event.quantity, 'return': -event.quantity}.get(
                    event.kind, 0)
        assert {line.sku: line.quantity for line in receipt.lines} == \
            {sku: n for sku, n in held.items() if n}
        assert receipt.total_cents == sum(line.quantity * prices[line.sku]
                                          for line in receipt.lines)
    assert compute_receipts(truth.events, accounts, prices) == truth.receipts
    assert any(r.total_cents > 0 for r in truth.receipts)


def test_truth_json_round_trip(busy):
    text = busy.truth.to_json()
    assert Truth.from_json(text).to_json() == text


def test_run_twice_on_one_simulation_gives_the_same_truth(smoke_scenario):
    store = load_store_description(smoke_scenario.store_path)
    simulation = Simulation(dataclasses.replace(smoke_scenario, duration_s=20.0), store)
    first = [t.stamp_ns for t in simulation.run()]
    text = simulation.truth.to_json()
    second = [t.stamp_ns for t in simulation.run()]
    assert first == second and simulation.truth.to_json() == text


def test_items_ride_in_hands_then_in_the_basket(smoke_scenario):
    store = load_store_description(smoke_scenario.store_path)
    simulation = Simulation(smoke_scenario, store)
    seen = set()
    for tick in simulation.run():
        for body in tick.bodies:
            for item in body.held:
                seen.add(item.hand)
                if item.hand != 'basket':
                    hand = body.joints[f'{item.hand}_hand']
                    assert np.linalg.norm(item.position - hand) < 0.1
                else:
                    assert np.linalg.norm(item.position[:2] - body.position_xy()) < 0.5
                    assert 0.5 < item.position[2] < 1.2
    assert 'basket' in seen and seen & {'left', 'right'}


def test_ticks_hand_the_stock_to_the_renderer_and_staff_wear_the_uniform(smoke_scenario):
    uniform = (200, 20, 10)
    scenario = dataclasses.replace(
        smoke_scenario, duration_s=60.0,
        associates=dataclasses.replace(smoke_scenario.associates, count=1,
                                       uniform_rgb=uniform))
    simulation = Simulation(scenario, load_store_description(scenario.store_path))
    stocks, staff_shirts, shopper_shirts = [], set(), set()
    for tick in simulation.run():
        assert (tick.stock is not None) == (tick.camera_frame or bool(tick.captures))
        if tick.stock is not None:
            stocks.append(tick.stock)
        for body in tick.bodies:
            (staff_shirts if body.role == 'associate' else shopper_shirts).add(body.shirt_rgb)
    assert staff_shirts == {uniform} and uniform not in shopper_shirts
    assert set(stocks[0]) == set(simulation.store.bins())
    picks = [e for e in simulation.truth.events if e.kind == 'pick']
    assert picks
    first, last = stocks[0], stocks[-1]
    for event in picks:
        assert last[event.bin_id][event.sku] < first[event.bin_id][event.sku]
    # A snapshot, not a view of the world's live counts.
    assert stocks[0] is not stocks[-1] and stocks[0][picks[0].bin_id] is not \
        stocks[-1][picks[0].bin_id]


# ----------------------------------------------------------------------- crowd motion


def _walkers(smoke_scenario, routes):
    """Step a world with only these walkers (start, goal); return tracks and the world."""
    from go_store_nodes.core.sim import world
    store = load_store_description(smoke_scenario.store_path)
    scenario = dataclasses.replace(
        smoke_scenario, shoppers=dataclasses.replace(smoke_scenario.shoppers, count=0))
    simulation = Simulation(scenario, store)
    simulation._reset()
    agents = []
    for pid, (start, goal) in enumerate(routes, start=1):
        rng = np.random.default_rng(pid)
        agent = world._Agent(pid, 'shopper', world.Physique(1.7, 0.45, 0.7, (1, 1, 1),
                                                            (1, 1, 1), (1, 1, 1)),
                             rng, None, 0, np.array(start, dtype=float), 0.0)
        agent.present = True
        agent.queue.append(world._Walk(np.array(goal, dtype=float), 'walk'))
        simulation.agents.append(agent)
        agents.append(agent)
    tracks = []
    for step in range(20 * STEP_HZ):
        simulation.step = step
        simulation._crowd_snapshot()
        for agent in agents:
            simulation._advance(agent)
        simulation._separate()
        tracks.append(np.array([a.pos.copy() for a in agents]))
    return np.array(tracks), agents


def test_walkers_meeting_head_on_dodge_each_other(smoke_scenario):
    # Open floor in front of the shelves (y = 1.4 m), walking towards each other.
    tracks, agents = _walkers(smoke_scenario, [((1.0, 1.4), (8.0, 1.4)),
                                               ((8.0, 1.4), (1.0, 1.4))])
    gaps = np.linalg.norm(tracks[:, 0] - tracks[:, 1], axis=1)
    assert gaps.min() > 0.42, 'they keep their distance without being pushed apart'
    assert all(a.action is None and not a.queue for a in agents), 'both arrive'
    assert np.allclose(tracks[-1], [[8.0, 1.4], [1.0, 1.4]], atol=0.03)
    # Each dodged to its own right: the first (walking +x) to -y, the second to +y.
    middle = int(np.argmin(gaps))
    assert tracks[middle, 0, 1] < tracks[middle, 1, 1]


def test_a_walker_gets_past_someone_standing_in_its_way(smoke_scenario):
    # The second stands still on the first one's straight line (it has nowhere to go).
    tracks, agents = _walkers(smoke_scenario, [((1.0, 1.4), (8.0, 1.4)),
                                               ((4.5, 1.4), (4.5, 1.4))])
    gaps = np.linalg.norm(tracks[:, 0] - tracks[:, 1], axis=1)
    assert gaps.min() >= 0.36
    assert np.allclose(tracks[-1, 0], [8.0, 1.4], atol=0.03), 'it walked round and on'
    assert np.allclose(tracks[:, 1], [4.5, 1.4], atol=1e-9), 'a standing person is not pushed'


def test_the_gate_links_each_party_to_its_own_scan(busy, repo, tmp_path):
    # The gate core with a perfect tracker (truth frames, track id = person id) links
    # every party member to the visit of the party's scan and nobody to another party's.
    from test_ledger_backends import open_backend

    from go_store_nodes.core.gate import GateLogic, TrackObservation

    truth = busy.truth
    people = {p.person_id: p for p in truth.people}
    key = load_public_key(repo / 'config' / 'demo_keys' / 'store_app_public.pem')
    scans = sorted(busy.check_ins, key=lambda scan: scan[0])
    with open_backend('sqlite', tmp_path) as backend:
        ledger = backend.new_ledger()
        gate = GateLogic(busy.store, ledger, key)
        for frame in truth.frames:
            while scans and scans[0][0] <= frame.stamp_ns:
                stamp_ns, data = scans.pop(0)
                outcome, _ = gate.check_in(data.gate_id, data.token, stamp_ns)
                assert outcome.accepted, outcome
            gate.on_tracks(frame.stamp_ns, [
                TrackObservation(str(p.person_id), p.x_m, p.y_m,
                                 people[p.person_id].role == 'associate')
                for p in frame.people])
        visit_of = {pid: ledger.visit_for_track(str(pid)) for pid in people}
    for check_in in truth.check_ins:
        visits = {visit_of[pid] for pid in check_in.person_ids}
        assert len(visits) == 1 and None not in visits, check_in
        linked = {pid for pid, visit in visit_of.items() if visit in visits}
        # Tailgaters may be linked too: the gate cannot tell them from companions.
        assert set(check_in.person_ids) <= linked <= \
            set(check_in.person_ids) | set(check_in.tailgater_ids)
