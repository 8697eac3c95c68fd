"""Check-in at the gate: token verification against the durable ledger (both back ends)."""

from pathlib import Path
from typing import Iterator

import pytest
from test_ledger_backends import Backend, BACKENDS, open_backend, S, T0

from go_store_nodes.core.ledger import (
    Ledger,
    LedgerError,
    RejectReason,
    TokenConfig,
    TokenIssuer,
    TokenRejected,
    TokenReplayedError,
    TokenVerifier,
    UnknownAccountError,
)
from go_store_nodes.core.ledger.tokens import generate_private_key

CONFIG = TokenConfig(default_ttl_ns=60 * S, clock_skew_ns=5 * S)
KEY = generate_private_key()
ISSUER = TokenIssuer(KEY, CONFIG)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path) as opened:
        yield opened


def gate(ledger: Ledger) -> TokenVerifier:
    return TokenVerifier(KEY.public_key(), CONFIG, account_exists=ledger.account_exists,
                         consume=ledger.consume_token)


def reason(verifier: TokenVerifier, token: str, now_ns: int) -> RejectReason:
    with pytest.raises(TokenRejected) as caught:
        verifier.verify(token, now_ns)
    return caught.value.reason


def test_scan_opens_a_visit_and_a_replay_is_refused_even_after_restart(
        backend: Backend) -> None:
    ledger = backend.new_ledger()
    ledger.register_account('acct-1', T0)
    token = ISSUER.issue('acct-1', T0)
    verified = gate(ledger).verify(token, T0 + S)
    visit_id = ledger.open_visit('acct-1', ('t1', 't2', 't3'), T0 + S, verified.token_id)
    assert ledger.get_visit(visit_id).track_ids == ('t1', 't2', 't3')
    assert reason(gate(ledger), token, T0 + 2 * S) is RejectReason.REPLAYED
    restarted = backend.new_ledger()  # a gate reboot: replay protection is in the database
    assert reason(gate(restarted), token, T0 + 3 * S) is RejectReason.REPLAYED


def test_unknown_and_deactivated_accounts_are_refused(backend: Backend) -> None:
    ledger = backend.new_ledger()
    assert reason(gate(ledger), ISSUER.issue('ghost', T0), T0) is RejectReason.UNKNOWN_ACCOUNT
    ledger.register_account('acct-1', T0)
    ledger.register_account('acct-1', T0 + S, active=False)
    assert reason(gate(ledger), ISSUER.issue('acct-1', T0), T0) is RejectReason.UNKNOWN_ACCOUNT
    with pytest.raises(UnknownAccountError):
        ledger.open_visit('acct-1', ('t1',), T0)


def test_open_visit_consumes_the_token_when_the_gate_did_not(backend: Backend) -> None:
    ledger = backend.new_ledger()
    ledger.register_account('acct-1', T0)
    token = ISSUER.issue('acct-1', T0)
    verified = TokenVerifier(KEY.public_key(), CONFIG).verify(token, T0)  # no consume
    visit_id = ledger.open_visit('acct-1', ('t1',), T0, verified.token_id)
    # Retrying the very same scan returns the same visit ...
    assert ledger.open_visit('acct-1', ('t1',), T0 + S, verified.token_id) == visit_id
    # ... a replay by someone else is refused.
    with pytest.raises(TokenReplayedError):
        ledger.open_visit('acct-1', ('t9',), T0 + 2 * S, verified.token_id)
    assert reason(gate(ledger), token, T0 + 3 * S) is RejectReason.REPLAYED


def test_consume_token_is_single_use(backend: Backend) -> None:
    ledger = backend.new_ledger()
    assert ledger.consume_token('tok-1', 'acct-1', T0, T0 + 60 * S)
    assert not ledger.consume_token('tok-1', 'acct-1', T0 + S, T0 + 60 * S)
    assert not ledger.consume_token('tok-1', 'acct-2', T0 + S)


def test_token_used_by_one_account_cannot_open_a_visit_for_another(backend: Backend) -> None:
    ledger = backend.new_ledger()
    ledger.register_account('acct-2', T0)
    assert ledger.consume_token('tok-1', 'acct-1', T0, T0 + 60 * S)
    with pytest.raises(LedgerError):
        ledger.open_visit('acct-2', ('t1',), T0, 'tok-1')
