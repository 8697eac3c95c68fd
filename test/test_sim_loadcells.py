"""Load-cell model: 60 Hz in batches of 12, pressing transients, settled deltas, drift, spikes."""

import numpy as np
import pytest

from go_store_nodes.core.sim.loadcells import (
    BATCH_SIZE,
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


def test_config_validation():
    with pytest.raises(ValueError, match='noise_g'):
        LoadCellConfig(noise_g=-1.0)
    with pytest.raises(ValueError, match='press_g'):
        LoadCellConfig(press_g=(400.0, 100.0))
    with pytest.raises(ValueError, match='true_weights_g'):
        LoadCellArray(SHELVES, {'a1': 1.0}, LoadCellConfig(), np.random.default_rng(0))
