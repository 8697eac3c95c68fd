"""The truth-made association inputs and the measurement, on the smoke scenario."""

import pytest

from go_store_nodes.core.store import load_store_description
from go_store_testing.association_feed import _truth, measure, weight_candidates


def test_scale_candidates_leave_equal_weight_flavours_to_vision(store_path):
    description = load_store_description(store_path)
    bag = description.catalog['crispo_salted_150g']
    candidates = weight_candidates(description, -bag.unit_weight_g)
    skus = {c.sku: c.likelihood for c in candidates if c.quantity == 1}
    assert skus['crispo_salted_150g'] == pytest.approx(skus['crispo_paprika_150g'])
    assert 0.5 < sum(c.likelihood for c in candidates) <= 1.0 + 1e-9


@pytest.mark.slow
def test_smoke_run_is_charged_right_and_billed_seconds_after_the_exit():
    truth, description = _truth('smoke')
    result = measure(truth, description)
    assert result['association_accuracy'] == 1.0
    assert result['receipt_exact_match_rate'] == 1.0
    assert result['review_visit_rate'] == 0.0
    assert result['visits_with_receipt'] == result['visits_exited'] == 1
    assert result['latency_exit_to_receipt_p99_s'] < 5.0
