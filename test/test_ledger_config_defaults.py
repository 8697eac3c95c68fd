"""config/go_store.yaml is the one source of the gate's and cart_ledger's values.

The core config dataclasses keep defaults for tests and tools; this test fails when a
default and the shipped YAML drift apart, so a value is effectively written once.
"""

import yaml

from go_store_nodes.core.gate import GateConfig
from go_store_nodes.core.ledger import LedgerConfig, TokenConfig
from go_store_nodes.core.ledger.worker import WorkerConfig

NS = 1_000_000_000


def node_params(repo, node):
    with open(repo / 'config' / 'go_store.yaml') as handle:
        return yaml.safe_load(handle)[node]['ros__parameters']


def test_gate_yaml_matches_the_core_defaults(repo):
    params = node_params(repo, 'gate')
    gate, tokens, ledger = GateConfig(), TokenConfig(), LedgerConfig()
    assert round(params['group_window_s'] * NS) == gate.group_window_ns
    assert params['require_registered_accounts'] == gate.require_registered_accounts
    assert round(params['future_tolerance_s'] * NS) == gate.future_tolerance_ns
    assert round(params['max_scan_offset_s'] * NS) == gate.max_scan_offset_ns
    assert round(params['scan_lookback_s'] * NS) == gate.scan_lookback_ns
    assert round(params['visit_lost_after_s'] * NS) == gate.visit_lost_after_ns
    assert params['rejoin_margin_m'] == gate.rejoin_margin_m
    assert round(params['clock_skew_s'] * NS) == tokens.clock_skew_ns
    assert round(params['lock_wait_s'] * 1000) == ledger.sqlite_busy_timeout_ms \
        == ledger.postgres_lock_timeout_ms
    assert params['input_queue_capacity'] == WorkerConfig().capacity


def test_cart_ledger_yaml_matches_the_core_defaults(repo):
    params = node_params(repo, 'cart_ledger')
    ledger = LedgerConfig()
    assert round(params['grace_period_s'] * NS) == ledger.grace_period_ns
    assert params['retention_days'] == ledger.evidence_retention_days
    assert params['review_below_confidence'] == ledger.review_below_confidence
    assert params['max_quantity_delta'] == ledger.max_quantity_delta
    assert round(params['event_before_visit_tolerance_s'] * NS) == \
        ledger.event_before_visit_tolerance_ns
    assert round(params['lock_wait_s'] * 1000) == ledger.sqlite_busy_timeout_ms
    assert params['input_queue_capacity'] == WorkerConfig().capacity
    assert params['database_url'] == node_params(repo, 'gate')['database_url']
