"""Load-cell model: 60 Hz batches of 12, unit weights, ramps, presses, lifts, drift, spikes."""

import numpy as np
import pytest

from go_store_nodes.core.sim.loadcells import (
    BATCH_SIZE,
    draw_unit_weights,
    LoadCellArray,
    LoadCellConfig,
    SAMPLE_PERIOD_NS,
)

START_NS = 1_700_000_000 * 10 ** 9
SHELVES = [('shelf_a', ['a1', 'a2']), ('shelf_b', ['b1', 'b2', 'b3'])]
WEIGHTS = {'a1': 3000.0, 'a2': 2000.0, 'b1': 1500.0, 'b2': 5000.0, 'b3': 800.0}


def stamp_of_step(start_ns, step):
    return start_ns + (step * 10 ** 9 + 30) // 60


def _run(config, steps, schedule=(), seed=0):
    """Step the array; ``schedule`` holds (step, callable(array)) pairs."""
    cells = LoadCellArray(SHELVES, WEIGHTS, config, np.random.default_rng(seed))
    todo = dict(schedule)
    batches = []
    for step in range(steps):
        if step in todo:
            todo[step](cells)
        batches.extend(cells.sample(step, stamp_of_step(START_NS, step)))
    return cells, batches


def _series(batches, shelf_id, bin_id):
    chosen = [b for b in batches if b.shelf_id == shelf_id]
    column = chosen[0].bin_ids.index(bin_id)
    stamps = np.concatenate([b.first_stamp_ns + np.arange(len(b.grams)) * b.period_ns
                             for b in chosen])
    return stamps, np.concatenate([b.grams[:, column] for b in chosen])


def test_batches_of_twelve_at_sixty_hertz():
    _, batches = _run(LoadCellConfig(), 600)
    assert SAMPLE_PERIOD_NS == 16_666_667
    for shelf_id, bins in SHELVES:
        mine = [b for b in batches if b.shelf_id == shelf_id]
        assert len(mine) in (49, 50)           # 10 s, 5 batches per second
        for batch in mine:
            assert batch.grams.shape == (BATCH_SIZE, len(bins))
            assert batch.grams.dtype == np.float32
            assert batch.bin_ids == tuple(bins)
            assert batch.period_ns == SAMPLE_PERIOD_NS
        gaps = np.diff([b.first_stamp_ns for b in mine])
        assert np.all(np.abs(gaps - 12 * 10 ** 9 / 60) <= 1)
    firsts = {b.shelf_id: b.first_stamp_ns for b in reversed(batches)}
    assert firsts['shelf_a'] != firsts['shelf_b']      # staggered


def test_true_weight_with_white_noise():
    _, batches = _run(LoadCellConfig(noise_g=1.5), 1200)
    _, grams = _series(batches, 'shelf_b', 'b2')
    assert grams.mean() == pytest.approx(5000.0, abs=0.3)
    assert grams.std() == pytest.approx(1.5, rel=0.15)


def test_press_transient_then_settled_change():
    def touch(cells):
        cells.press('a1', 120, 40)
        cells.change('a1', 140, -158.0)
    _, batches = _run(LoadCellConfig(noise_g=1.0), 600, [(100, touch)])
    stamps, grams = _series(batches, 'shelf_a', 'a1')
    t = (stamps - START_NS) / 1e9
    touching = grams[(t >= 2.0) & (t < 2.67)]
    assert touching.max() - 3000.0 > 50.0              # the hand presses down
    before = np.median(grams[(t > 1.0) & (t < 1.9)])
    after = np.median(grams[(t > 3.5) & (t < 5.0)])
    assert after - before == pytest.approx(-158.0, abs=1.5)
    _, other = _series(batches, 'shelf_a', 'a2')
    assert np.ptp(other) < 10.0                          # neighbours unaffected


def test_drift_moves_absolute_weight_but_not_short_changes():
    _, batches = _run(LoadCellConfig(noise_g=0.5, drift_g_per_min=20.0), 60 * 120, seed=4)
    stamps, grams = _series(batches, 'shelf_b', 'b1')
    t = (stamps - START_NS) / 1e9
    first = np.median(grams[t < 2.0])
    last = np.median(grams[t > 118.0])
    assert abs(last - first) > 5.0
    one_second = [np.median(grams[(t > s + 1) & (t < s + 1.5)])
                  - np.median(grams[(t > s) & (t < s + 0.5)]) for s in range(0, 110, 10)]
    # Random walk of 20 g/min: about 2.6 g RMS per second, far below any unit weight.
    assert max(abs(d) for d in one_second) < 10.0


def test_spikes_are_counted_and_short():
    cells, batches = _run(LoadCellConfig(noise_g=0.5, spike_rate_per_min=30.0), 60 * 60)
    assert cells.spike_count > 50
    _, grams = _series(batches, 'shelf_b', 'b3')
    outliers = np.abs(grams - 800.0) > 100.0
    assert 0 < outliers.sum() < 0.02 * len(grams)
    assert np.median(grams) == pytest.approx(800.0, abs=0.2)


def _quiet(**changes):
    """No noise and no ringing: the samples are the true weight plus presses."""
    return LoadCellConfig(**dict(dict(noise_g=0.0, ringing_fraction=0.0), **changes))


def test_unit_weights_spread_within_the_tolerance():
    weights = np.array(draw_unit_weights(np.random.default_rng(3), 158.0, 3.0, 20_000))
    assert np.all(np.abs(weights - 158.0) <= 3.0)
    assert weights.mean() == pytest.approx(158.0, abs=0.05)
    assert 1.2 < weights.std() < 1.5                # sigma 1.5 g, clipped at 2 sigma
    assert np.mean(np.abs(weights - 158.0) == 3.0) < 0.06
    again = draw_unit_weights(np.random.default_rng(3), 158.0, 3.0, 20_000)
    assert np.array_equal(weights, again)
    assert draw_unit_weights(np.random.default_rng(4), 158.0, 3.0, 5) != again[:5]
    assert draw_unit_weights(np.random.default_rng(3), 104.0, 0.0, 3) == [104.0] * 3
    with pytest.raises(ValueError, match='tolerance_g'):
        draw_unit_weights(np.random.default_rng(3), 10.0, 10.0, 1)


def test_ramp_has_intermediate_values_then_the_full_change():
    def pick(cells):
        cells.change('a1', 100, -158.0, 30)
    cells, batches = _run(_quiet(), 240, [(50, pick)])
    _, grams = _series(batches, 'shelf_a', 'a1')
    assert np.all(grams[:100] == 3000.0)
    ramp = grams[100:129]
    assert np.all((ramp < 3000.0) & (ramp > 2842.0))
    assert np.all(np.diff(grams[99:131]) <= 0.0)
    assert len(np.unique(ramp)) == 29
    assert np.allclose(grams[129:], 2842.0, atol=1e-3)
    assert cells.true_g[cells.index('a1')] == pytest.approx(2842.0)
    step = [c for c in cells.history if c.bin_id == 'a1']
    assert [(c.start_step, c.steps, c.delta_g) for c in step] == [(100, 30, -158.0)]


def test_ramp_durations_are_drawn_within_range_and_limit():
    cells = LoadCellArray(SHELVES, WEIGHTS, LoadCellConfig(), np.random.default_rng(7))
    steps = np.array([cells.ramp_steps(1000) for _ in range(2000)])
    assert steps.min() >= 12 and steps.max() <= 48          # 0.2-0.8 s at 60 Hz
    assert np.ptp(steps) > 30
    assert max(cells.ramp_steps(20) for _ in range(200)) == 20
    other = LoadCellArray(SHELVES, WEIGHTS, LoadCellConfig(), np.random.default_rng(7))
    assert [other.ramp_steps(1000) for _ in range(2000)] == steps.tolist()
    with pytest.raises(ValueError, match='ramp_steps'):
        cells.change('a1', 10, 5.0, 0)
    with pytest.raises(ValueError, match='ramp_s'):
        LoadCellConfig(ramp_s=(0.8, 0.2))


def test_shelf_weight_is_tare_plus_the_units_left():
    rng = np.random.default_rng(11)
    tare = 1234.5
    units = draw_unit_weights(rng, 345.0, 4.0, 10)
    cells = LoadCellArray([('shelf_a', ['a1'])], {'a1': tare + sum(units)},
                          LoadCellConfig(noise_g=1.0), np.random.default_rng(12))
    remaining = list(units)
    schedule = {}
    step = 30
    for _ in range(4):                                  # four picks of the front unit
        weight = remaining.pop(0)
        schedule[step] = (-weight, cells.ramp_steps(40))
        step += 90
    returned = units[1]                                 # the second pick comes back
    remaining.insert(0, returned)
    schedule[step] = (returned, cells.ramp_steps(40))
    step += 90
    for weight in draw_unit_weights(rng, 345.0, 4.0, 3):    # a restock adds new units
        remaining.append(weight)
        schedule[step] = (weight, cells.ramp_steps(20))
        step += 30
    batches = []
    for k in range(step + 120):
        if k in schedule:
            cells.change('a1', k, *schedule[k])
        batches.extend(cells.sample(k, stamp_of_step(START_NS, k)))
    _, grams = _series(batches, 'shelf_a', 'a1')
    assert cells.true_g[0] == pytest.approx(tare + sum(remaining), abs=1e-9)
    assert np.median(grams[-60:]) == pytest.approx(tare + sum(remaining), abs=1.0)
    assert abs(sum(remaining) - 345.0 * len(remaining)) <= 4.0 * len(remaining)


def test_lift_and_put_back_leaves_the_settled_weight_unchanged():
    spans = {}

    def touch(cells):
        spans['held'] = cells.lift('a1', 120, 80, 158.6)
    cells, batches = _run(_quiet(), 600, [(100, touch)])
    _, grams = _series(batches, 'shelf_a', 'a1')
    off, back = spans['held']
    assert 120 < off < back < 200
    assert np.allclose(grams[off:back], 3000.0 - 158.6, atol=1e-3)    # the unit in the hand
    assert grams[120:off].max() > 3050.0                               # grasping press
    assert np.allclose(grams[:120], 3000.0) and np.allclose(grams[200:], 3000.0, atol=1e-6)
    assert sorted(c.delta_g for c in cells.history) == [-158.6, 158.6]
    # The same with noise and ringing: settled medians agree before and after.
    _, noisy = _run(LoadCellConfig(noise_g=2.0), 600,
                    [(100, lambda cells: cells.lift('a1', 120, 80, 158.6))])
    _, grams = _series(noisy, 'shelf_a', 'a1')
    assert np.median(grams[240:]) - np.median(grams[:110]) == pytest.approx(0.0, abs=1.0)
    with pytest.raises(ValueError, match='steps'):
        cells.lift('a1', 700, 5, 158.6)


def test_same_seed_same_samples_with_ramps_and_lifts():
    def schedule(cells):
        cells.change('b2', 130, -520.0, cells.ramp_steps(40))
        cells.lift('a2', 200, 70, 104.5)
        cells.press('b1', 300, 40)
    config = LoadCellConfig(noise_g=1.0, drift_g_per_min=2.0, spike_rate_per_min=1.0)
    _, first = _run(config, 600, [(100, schedule)], seed=5)
    _, second = _run(config, 600, [(100, schedule)], seed=5)
    _, other = _run(config, 600, [(100, schedule)], seed=6)
    assert all(np.array_equal(a.grams, b.grams) for a, b in zip(first, second, strict=True))
    assert not all(np.array_equal(a.grams, b.grams) for a, b in zip(first, other, strict=True))


def test_config_validation():
    with pytest.raises(ValueError, match='noise_g'):
        LoadCellConfig(noise_g=-1.0)
    with pytest.raises(ValueError, match='press_g'):
        LoadCellConfig(press_g=(400.0, 100.0))
    with pytest.raises(ValueError, match='true_weights_g'):
        LoadCellArray(SHELVES, {'a1': 1.0}, LoadCellConfig(), np.random.default_rng(0))
