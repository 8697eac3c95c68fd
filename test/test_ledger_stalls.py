"""Gate and cart_ledger processes under a stalled database and untrusted topics.

Another process holds the SQLite ledger file (``BEGIN EXCLUSIVE``) while input keeps
coming: nothing may be lost. A ``Visit`` ENDED from any participant must not close a
visit. A database that is down at start is waited for. The demo key is reported.
SQLite only: the lock is taken on the file (PostgreSQL lock waits are bounded the same
way by ``lock_timeout``).
"""

from __future__ import annotations

import sqlite3
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from go_store.msg import CheckIn, Receipt, Visit
from go_store.srv import GetCart
import pytest
from sqlalchemy.engine import make_url
from std_msgs.msg import Header
from test_cart_ledger_dds import cart, enter, event, LEDGER, receipts_of
from test_gate_dds import AISLE, ENTRY, EXIT, Probe, StoreProcesses

from go_store_nodes.core.ledger import TokenIssuer
from go_store_nodes.nodes.cart_ledger import ACKS_QOS
from go_store_nodes.nodes.gate import VISITS_QOS
from go_store_nodes.ros.ledger_conversions import ns_to_stamp

pytestmark = pytest.mark.slow
S = 1_000_000_000
LOCK_S = 45.0
EVENTS_PER_S = 100
EVENT_SECONDS = 20.0  # events arrive during the first 20 s of the 45 s lock
HOLDOFF_S = 5.0
CHECK_INS = 300


@pytest.fixture
def probe():
    opened = Probe()
    opened.acks: dict[str, str] = {}
    opened.levels: dict[str, bytes] = {}
    opened.node.create_subscription(
        KeyValue, 'cart/event_acks', lambda kv: opened.acks.__setitem__(kv.key, kv.value),
        ACKS_QOS)
    opened.node.create_subscription(
        DiagnosticArray, 'diagnostics',
        lambda msg: opened.levels.update({s.name: s.level for s in msg.status}), 50)
    opened.visits_pub = opened.node.create_publisher(Visit, 'visits', VISITS_QOS)
    yield opened
    opened.close()


def sqlite_url(tmp_path) -> str:
    return f'sqlite:///{tmp_path / "ledger.sqlite"}'


def hold_database(url: str) -> sqlite3.Connection:
    """Lock the ledger file as another process would (readers go on, writers wait)."""
    connection = sqlite3.connect(make_url(url).database, isolation_level=None)
    connection.execute('BEGIN EXCLUSIVE')
    return connection


@pytest.fixture
def both(repo, tmp_path):
    processes = StoreProcesses(repo, tmp_path, sqlite_url(tmp_path), ('gate', 'cart_ledger'))
    yield processes
    processes.stop()


def stored_events(tmp_path) -> int:
    with sqlite3.connect(make_url(sqlite_url(tmp_path)).database) as connection:
        return connection.execute('SELECT count(*) FROM cart_events').fetchone()[0]


def ready(processes, probe):
    probe.wait_for_gate(processes)
    probe.wait_for_cart_ledger(processes)


def spin_for(probe, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        probe.executor.spin_once(timeout_sec=0.01)


def test_a_45_s_database_lock_at_100_events_per_s_loses_no_event(both, probe, tmp_path):
    ready(both, probe)
    now = time.time_ns()
    visit_id = enter(both, probe, 'acct-stall', now, t1=ENTRY)
    lock = hold_database(sqlite_url(tmp_path))
    started = time.monotonic()
    sent = 0
    try:
        while time.monotonic() - started < LOCK_S:
            due = min(int((time.monotonic() - started) * EVENTS_PER_S),
                      int(EVENT_SECONDS * EVENTS_PER_S))
            while sent < due:
                probe.events_pub.publish(event(
                    visit_id, f'stall-{sent}', 'apple_red_single', 1, track=1))
                sent += 1
            probe.executor.spin_once(timeout_sec=0.005)
        assert not probe.acks  # nothing could be committed while the file was held
    finally:
        lock.execute('ROLLBACK')
        lock.close()
    assert sent == int(EVENT_SECONDS * EVENTS_PER_S)
    # Stored: wait until the database holds them all, or until nothing moved for 15 s.
    last_change, stored = time.monotonic(), 0
    while stored < sent and time.monotonic() - last_change < 15.0:
        both.check_alive()
        spin_for(probe, 0.5)
        count = stored_events(tmp_path)
        if count != stored:
            stored, last_change = count, time.monotonic()
    assert stored == sent, f'{sent - stored} of {sent} cart events lost'
    # Acknowledged, each once applied, and all in the cart.
    probe.spin_until(lambda: len(probe.acks) == sent, 'every acknowledgement', both)
    assert set(probe.acks.values()) == {'applied'}
    response = cart(probe, visit_id)
    assert [(line.sku, line.quantity) for line in response.lines] == [
        ('apple_red_single', sent)]
    probe.spin_until(lambda: probe.counter(LEDGER, 'database_retries') > 0,
                     'the retries in diagnostics', both)
    assert probe.counter(LEDGER, 'dropped_queue_full') == 0


def test_an_exit_during_a_3_s_gate_stall_still_gives_a_receipt(both, probe, tmp_path):
    ready(both, probe)
    now = time.time_ns()
    visit_id = enter(both, probe, 'acct-leaving', now, t1=ENTRY)
    probe.events_pub.publish(event(visit_id, 'leave-1', 'coffee_beans_250g', 1, track=1))
    probe.spin_until(lambda: cart(probe, visit_id).total_cents == 599, 'the pick', both)
    lock = hold_database(sqlite_url(tmp_path))
    try:
        # Another shopper scans: the gate's write waits on the lock.
        issuer = TokenIssuer(both.key)
        probe.check_in_pub.publish(probe_check_in(issuer, 'acct-other'))
        # Tracks at 15 Hz for 3 s: t1 walks to the exit, stands in it, then is gone.
        for frame in range(45):
            stamp = time.time_ns()
            if frame < 15:
                probe.tracks(stamp, t1=AISLE)
            elif frame < 20:
                probe.tracks(stamp, t1=EXIT)
            else:
                probe.tracks(stamp)
            spin_for(probe, 1.0 / 15.0)
    finally:
        lock.execute('ROLLBACK')
        lock.close()
    probe.spin_until(lambda: probe.visit_with(visit_id, Visit.ENDED), 'Visit ENDED', both)
    issued = probe.spin_until(lambda: receipts_of(probe, visit_id, Receipt.ISSUED),
                              'the receipt', both)
    assert issued[0].total_cents == 599


def probe_check_in(issuer, account):
    now = time.time_ns()
    return CheckIn(header=Header(stamp=ns_to_stamp(now), frame_id='gate_entry'),
                   gate_id='gate_entry', token=issuer.issue(account, now))


def test_a_visit_ended_message_from_anyone_does_not_close_the_visit(both, probe):
    ready(both, probe)
    now = time.time_ns()
    visit_id = enter(both, probe, 'acct-forged', now, t1=ENTRY)
    probe.events_pub.publish(event(visit_id, 'f-1', 'coffee_beans_250g', 1, track=1))
    probe.spin_until(lambda: cart(probe, visit_id).total_cents == 599, 'the pick', both)
    # Any participant publishes the visit ENDED, stamped 0.
    probe.visits_pub.publish(Visit(header=Header(frame_id='map'), visit_id=visit_id,
                                   account_id='acct-forged', gate_id='gate_exit',
                                   status=Visit.ENDED))
    probe.spin_until(lambda: probe.visit_with(visit_id, Visit.ENDED), 'the forged ENDED '
                     'on the bus', both)
    start = probe.counter(LEDGER, 'receipt_checks')
    probe.spin_until(lambda: probe.counter(LEDGER, 'receipt_checks') >= start + 5,
                     'later receipt checks', both)
    probe.events_pub.publish(event(visit_id, 'f-2', 'apple_red_single', 2, track=1))
    probe.spin_until(lambda: cart(probe, visit_id).total_cents != 599
                     or probe.counter(LEDGER, 'events_rejected_visit_closed'),
                     'the next pick to be applied or rejected', both)
    assert receipts_of(probe, visit_id, Receipt.ISSUED) == []
    assert cart(probe, visit_id).total_cents == 599 + 2 * 49


def test_a_ledger_restart_holds_receipts_until_upstream_can_resend(repo, tmp_path, probe):
    url = sqlite_url(tmp_path)
    (tmp_path / 'gate').mkdir()
    (tmp_path / 'ledger').mkdir()
    gate = StoreProcesses(repo, tmp_path / 'gate', url, ('gate',))
    ledger = None
    try:
        probe.wait_for_gate(gate)
        visit_id = enter(gate, probe, 'acct-hold', time.time_ns(), t1=ENTRY)
        probe.tracks(time.time_ns(), t1=EXIT)
        probe.tracks(time.time_ns())
        probe.spin_until(lambda: probe.visit_with(visit_id, Visit.ENDED), 'ENDED', gate)
        # The exit is recorded; the cart ledger (re)starts now with a 5 s hold-off.
        started = time.monotonic()
        ledger = StoreProcesses(repo, tmp_path / 'ledger', url, ('cart_ledger',),
                                receipt_holdoff_s=HOLDOFF_S)
        probe.spin_until(lambda: receipts_of(probe, visit_id, Receipt.ISSUED),
                         'the receipt', ledger)
        # Upstream had the hold-off to re-send before the bill closed: it runs from the
        # database connection, which comes after the process started (without it the
        # receipt came 0.1 s after the connection).
        assert time.monotonic() - started >= HOLDOFF_S
    finally:
        gate.stop()
        if ledger is not None:
            ledger.stop()


def test_a_database_down_at_start_is_waited_for(repo, tmp_path, probe):
    # Nothing listens on port 9 of this host: the server is "down".
    processes = StoreProcesses(
        repo, tmp_path, 'postgresql+psycopg://store@127.0.0.1:9/ledger', ('cart_ledger',))
    try:
        probe.spin_until(lambda: probe.counter(LEDGER, 'database_retries') >= 2,
                         'connection retries in diagnostics', processes)
        probe.spin_until(lambda: probe.levels.get(LEDGER) == DiagnosticStatus.ERROR,
                         'the ERROR level', processes)
        processes.check_alive()
        client = probe.get_cart_client
        probe.spin_until(client.service_is_ready, 'ledger/get_cart', processes)
        answer = probe.call(client, GetCart.Request(visit_id='x'))
        assert not answer.found and 'not connected' in answer.message
    finally:
        processes.stop()
    assert 'database not available' in processes.output('cart_ledger')


def test_the_demo_key_outside_simulation_is_an_error(repo, tmp_path, probe):
    processes = StoreProcesses(repo, tmp_path, sqlite_url(tmp_path), ('gate',),
                               token_public_key_file='config/demo_keys/store_app_public.pem')
    try:
        probe.spin_until(lambda: probe.diagnostics.get('/gate', {}).get('demo_key'),
                         'the demo key in diagnostics', processes)
        probe.spin_until(lambda: probe.levels.get('/gate') == DiagnosticStatus.ERROR,
                         'the ERROR level', processes)
    finally:
        processes.stop()
    assert 'DEMO check-in key' in processes.output('gate')


def test_check_ins_at_100_per_s_during_a_lock_are_all_answered(both, probe, tmp_path):
    ready(both, probe)
    issuer = TokenIssuer(both.key)
    lock = hold_database(sqlite_url(tmp_path))
    try:
        for n in range(CHECK_INS):
            probe.check_in_pub.publish(probe_check_in(issuer, f'acct-rush-{n}'))
            spin_for(probe, 0.01)  # 100 scans/s
        spin_for(probe, 2.0)
        assert probe.counter('/gate', 'accepted') == 0  # no visit while the file is held
    finally:
        lock.execute('ROLLBACK')
        lock.close()
    # Counted by the gate and in the database (the answers' own topic keeps the last 10).
    probe.spin_until(lambda: probe.counter('/gate', 'accepted') >= CHECK_INS,
                     'every scan accepted', both)
    with sqlite3.connect(make_url(sqlite_url(tmp_path)).database) as connection:
        visits = connection.execute('SELECT count(DISTINCT account_id) FROM visits').fetchone()
    assert visits[0] == CHECK_INS
    assert probe.counter('/gate', 'dropped_queue_full') == 0
