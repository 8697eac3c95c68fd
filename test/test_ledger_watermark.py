"""cart_ledger's receipt rule: the association watermark past the exit, or a bounded wait.

The node is built in this process (nothing spins: the receipt rule is called directly),
on a SQLite ledger where the visit is opened and its exit recorded as the gate would.
"""

from __future__ import annotations

import time

import pytest
import rclpy
from rclpy.parameter import Parameter
from std_msgs.msg import Header
import yaml

from go_store_nodes.core.ledger import Ledger, LedgerConfig
from go_store_nodes.nodes.cart_ledger import CartLedgerNode
from go_store_nodes.ros.ledger_conversions import ns_to_stamp

S = 1_000_000_000


@pytest.fixture
def make_node(repo, tmp_path):
    context = rclpy.Context()
    rclpy.init(context=context)
    url = f'sqlite:///{tmp_path / "ledger.sqlite"}'
    shipped = yaml.safe_load((repo / 'config' / 'go_store.yaml').read_text())
    built = []

    def make(grace_period_s: float) -> tuple[CartLedgerNode, Ledger]:
        values = dict(shipped['cart_ledger']['ros__parameters'])
        values.update(database_url=url, grace_period_s=grace_period_s, receipt_holdoff_s=0.0,
                      store_description=str(repo / 'config' / 'store.yaml'))
        node = CartLedgerNode(context=context, parameter_overrides=[
            Parameter(name, value=value) for name, value in values.items()])
        assert node.worker.wait_idle(30.0) and node.ledger is not None
        built.append(node)
        return node, node.ledger

    yield make
    for node in built:
        node.destroy_node()
    rclpy.shutdown(context=context)


def exited_visit(ledger: Ledger, exit_ns: int) -> str:
    ledger.register_account('acct-1', exit_ns - 60 * S)
    visit_id = ledger.open_visit('acct-1', ['1'], exit_ns - 60 * S)
    ledger.mark_exit(visit_id, exit_ns)
    return visit_id


def watermark(stamp_ns: int) -> Header:
    return Header(stamp=ns_to_stamp(stamp_ns), frame_id='map')


def test_receipt_is_due_once_the_watermark_passes_the_exit(make_node):
    node, ledger = make_node(grace_period_s=60.0)
    now = time.time_ns()
    visit_id = exited_visit(ledger, now - S)
    assert node._due(now) == []                          # no watermark yet
    node.on_watermark(watermark(now - 2 * S))            # behind the exit
    assert node._due(now) == []
    node.on_watermark(watermark(now - S))                # at the exit
    assert node._due(now) == [visit_id]
    node.on_watermark(watermark(now - 10 * S))           # a restarted association: kept
    assert node._watermark_ns == now - S
    node.check_receipts()
    receipt = ledger.get_receipt(visit_id)
    assert receipt is not None
    assert node.diagnostics.counters.get('watermark_waits_expired', 0) == 0


def test_without_watermark_the_bounded_wait_fires_and_is_counted(make_node):
    node, ledger = make_node(grace_period_s=0.3)
    now = time.time_ns()
    visit_id = exited_visit(ledger, now - S)   # the node clock is past exit + 0.3 s ...
    assert node._due(now) == []                # ... but the node saw it only now (steady)
    time.sleep(0.35)
    assert node._due(time.time_ns()) == [visit_id]
    assert node._due(time.time_ns()) == [visit_id]
    assert node.diagnostics.counters['watermark_waits_expired'] == 1  # counted once
    node.check_receipts()
    assert ledger.get_receipt(visit_id) is not None
    assert node._due(time.time_ns()) == []


def test_a_receipt_never_precedes_the_bounded_wait_on_the_node_clock(make_node):
    node, ledger = make_node(grace_period_s=0.3)
    now = time.time_ns()
    exited_visit(ledger, now + 5 * S)          # exit stamped ahead of the node clock
    time.sleep(0.35)
    assert node._due(time.time_ns()) == []


def test_default_bounded_wait_is_the_core_default(repo):
    shipped = yaml.safe_load((repo / 'config' / 'go_store.yaml').read_text())
    assert round(shipped['cart_ledger']['ros__parameters']['grace_period_s'] * S) == \
        LedgerConfig().grace_period_ns == 30 * S
