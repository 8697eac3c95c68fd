"""QR check-in tokens: Ed25519 signatures, lifetimes, single use and PEM keys (no database)."""

import base64
from pathlib import Path
import re
import stat
import struct

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
import pytest

from go_store_nodes.core.ledger.tokens import (
    generate_private_key,
    load_private_key,
    load_public_key,
    private_key_from_pem,
    public_key_from_pem,
    RejectReason,
    save_private_key,
    save_public_key,
    SIGNATURE_DOMAIN,
    TokenConfig,
    TokenIssuer,
    TokenRejected,
    TokenVerifier,
)

S = 1_000_000_000
NOW = 1_800_000_000 * S
CONFIG = TokenConfig(default_ttl_ns=60 * S, max_ttl_ns=300 * S, clock_skew_ns=5 * S)
KEY = generate_private_key()
ISSUER = TokenIssuer(KEY, CONFIG)
VERIFIER = TokenVerifier(KEY.public_key(), CONFIG)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))


def rejected(verifier: TokenVerifier, token: object, now_ns: int = NOW) -> RejectReason:
    with pytest.raises(TokenRejected) as caught:
        verifier.verify(token, now_ns)  # type: ignore[arg-type]
    return caught.value.reason


def signed_payload(payload: bytes) -> str:
    return f'{b64(payload)}.{b64(KEY.sign(SIGNATURE_DOMAIN + payload))}'


def test_valid_token_round_trips_and_is_qr_compact() -> None:
    token = ISSUER.issue('acct-42', NOW)
    assert re.fullmatch(r'[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+', token)
    assert len(token) < 200
    verified = VERIFIER.verify(token, NOW + S)
    assert verified.account_id == 'acct-42'
    assert verified.issued_at_ns == NOW
    assert verified.expires_at_ns == NOW + 60 * S
    assert re.fullmatch(r'[0-9a-f]{32}', verified.token_id)
    assert VERIFIER.verify(f'  {token}\n', NOW).token_id == verified.token_id


def test_a_token_states_its_party_size_and_a_bad_one_is_refused() -> None:
    assert VERIFIER.verify(ISSUER.issue('acct-42', NOW), NOW).party_size == 0  # not stated
    verified = VERIFIER.verify(ISSUER.issue('acct-42', NOW, party_size=3), NOW)
    assert (verified.account_id, verified.party_size) == ('acct-42', 3)
    for size in (0, 17, True, 2.0):
        with pytest.raises(ValueError, match='party_size'):
            ISSUER.issue('acct-42', NOW, party_size=size)
    # Signed, but stating a party of 0 or of 200: malformed, whoever signed it.
    header = struct.pack('>BQQ16s', 2, NOW, NOW + 60 * S, bytes(16))
    for size in (0, 200):
        payload = header + bytes([size]) + b'acct-42'
        assert rejected(VERIFIER, signed_payload(payload)) is RejectReason.MALFORMED
    assert rejected(VERIFIER, signed_payload(header + bytes([2]))) is RejectReason.MALFORMED
    # Changing the stated size breaks the signature.
    payload_text, signature_text = ISSUER.issue('acct-42', NOW, party_size=1).split('.')
    payload = bytearray(unb64(payload_text))
    payload[struct.calcsize('>BQQ16s')] = 4
    assert rejected(VERIFIER, f'{b64(bytes(payload))}.{signature_text}') \
        is RejectReason.BAD_SIGNATURE


def test_token_ids_are_random() -> None:
    ids = {VERIFIER.verify(ISSUER.issue('acct-1', NOW), NOW).token_id for _ in range(50)}
    assert len(ids) == 50


def test_forged_token_signed_by_another_key_is_refused() -> None:
    forger = TokenIssuer(generate_private_key(), CONFIG)
    assert rejected(VERIFIER, forger.issue('acct-42', NOW)) is RejectReason.BAD_SIGNATURE


def test_tampered_payload_is_refused() -> None:
    payload_text, signature_text = ISSUER.issue('acct-42', NOW).split('.')
    payload = bytearray(unb64(payload_text))
    payload[-1] ^= 0x01  # another account id
    forged = f'{b64(bytes(payload))}.{signature_text}'
    assert rejected(VERIFIER, forged) is RejectReason.BAD_SIGNATURE
    longer = bytearray(unb64(payload_text))
    longer[9:17] = struct.pack('>Q', NOW + 10_000 * S)  # stretched lifetime
    assert rejected(VERIFIER, f'{b64(bytes(longer))}.{signature_text}') \
        is RejectReason.BAD_SIGNATURE


def test_tampered_signature_is_refused() -> None:
    payload_text, signature_text = ISSUER.issue('acct-42', NOW).split('.')
    signature = bytearray(unb64(signature_text))
    signature[0] ^= 0x80
    assert rejected(VERIFIER, f'{payload_text}.{b64(bytes(signature))}') \
        is RejectReason.BAD_SIGNATURE


def test_signature_for_another_purpose_is_refused() -> None:
    payload_text, _ = ISSUER.issue('acct-42', NOW).split('.')
    raw_signature = KEY.sign(unb64(payload_text))  # no domain prefix
    assert rejected(VERIFIER, f'{payload_text}.{b64(raw_signature)}') \
        is RejectReason.BAD_SIGNATURE


def test_expired_token_is_refused_after_the_skew_tolerance() -> None:
    token = ISSUER.issue('acct-42', NOW, ttl_ns=30 * S)
    assert VERIFIER.verify(token, NOW + 34 * S).account_id == 'acct-42'  # within 5 s skew
    assert rejected(VERIFIER, token, NOW + 35 * S) is RejectReason.EXPIRED
    assert rejected(VERIFIER, token, NOW + 3600 * S) is RejectReason.EXPIRED


def test_token_from_the_future_is_not_yet_valid() -> None:
    token = ISSUER.issue('acct-42', NOW + 60 * S)
    assert rejected(VERIFIER, token, NOW) is RejectReason.NOT_YET_VALID
    assert VERIFIER.verify(token, NOW + 55 * S).account_id == 'acct-42'


@pytest.mark.parametrize('text', [
    '', '   ', 'abc', 'a.b.c', 'not base64!.sig', 'QUJD.', '.QUJD', 'QUJD=.QUJD',
    'A' * 600, 'QUJD.QUJD',
])
def test_malformed_text_is_refused(text: str) -> None:
    assert rejected(VERIFIER, text) is RejectReason.MALFORMED


@pytest.mark.parametrize('value', [None, b'bytes', 42])
def test_non_text_is_malformed(value: object) -> None:
    assert rejected(VERIFIER, value) is RejectReason.MALFORMED


def test_non_canonical_base64_is_malformed() -> None:
    payload_text, signature_text = ISSUER.issue('acct-42', NOW).split('.')
    last = signature_text[-1]
    alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
    twin = alphabet[alphabet.index(last) ^ 1]  # 64 bytes -> 86 chars: 4 unused low bits
    assert rejected(VERIFIER, f'{payload_text}.{signature_text[:-1]}{twin}') \
        is RejectReason.MALFORMED


def test_signed_but_unsupported_contents_are_malformed() -> None:
    token_id = bytes(16)
    version_2 = struct.pack('>BQQ16s', 2, NOW, NOW + 60 * S, token_id) + b'acct-42'
    assert rejected(VERIFIER, signed_payload(version_2)) is RejectReason.MALFORMED
    too_long = struct.pack('>BQQ16s', 1, NOW, NOW + 3600 * S, token_id) + b'acct-42'
    assert rejected(VERIFIER, signed_payload(too_long)) is RejectReason.MALFORMED
    backwards = struct.pack('>BQQ16s', 1, NOW, NOW - S, token_id) + b'acct-42'
    assert rejected(VERIFIER, signed_payload(backwards)) is RejectReason.MALFORMED
    bad_utf8 = struct.pack('>BQQ16s', 1, NOW, NOW + 60 * S, token_id) + b'\xff\xfe'
    assert rejected(VERIFIER, signed_payload(bad_utf8)) is RejectReason.MALFORMED


def test_unknown_account_is_refused_when_a_lookup_is_given() -> None:
    verifier = TokenVerifier(KEY.public_key(), CONFIG, account_exists={'acct-1'}.__contains__)
    assert verifier.verify(ISSUER.issue('acct-1', NOW), NOW).account_id == 'acct-1'
    assert rejected(verifier, ISSUER.issue('acct-2', NOW)) is RejectReason.UNKNOWN_ACCOUNT


def test_replayed_token_is_refused_through_the_consume_callable() -> None:
    used: dict[str, tuple[str, int, int]] = {}

    def consume(token_id: str, account_id: str, now_ns: int, expires_at_ns: int) -> bool:
        if token_id in used:
            return False
        used[token_id] = (account_id, now_ns, expires_at_ns)
        return True

    verifier = TokenVerifier(KEY.public_key(), CONFIG, consume=consume)
    token = ISSUER.issue('acct-7', NOW)
    verified = verifier.verify(token, NOW + S)
    assert used[verified.token_id] == ('acct-7', NOW + S, NOW + 60 * S)
    error = pytest.raises(TokenRejected, verifier.verify, token, NOW + 2 * S).value
    assert error.reason is RejectReason.REPLAYED
    assert verified.token_id in str(error)


def test_refused_tokens_are_not_consumed() -> None:
    calls: list[str] = []

    def consume(token_id: str, account_id: str, now_ns: int, expires_at_ns: int) -> bool:
        calls.append(token_id)
        return True

    verifier = TokenVerifier(KEY.public_key(), CONFIG, consume=consume)
    rejected(verifier, ISSUER.issue('acct-7', NOW), NOW + 3600 * S)
    rejected(verifier, TokenIssuer(generate_private_key(), CONFIG).issue('acct-7', NOW))
    assert calls == []


def test_issuer_validates_its_inputs() -> None:
    with pytest.raises(ValueError):
        ISSUER.issue('', NOW)
    with pytest.raises(ValueError):
        ISSUER.issue('x' * 65, NOW)
    with pytest.raises(ValueError):
        ISSUER.issue('acct\n1', NOW)
    with pytest.raises(ValueError):
        ISSUER.issue('acct-1', NOW, ttl_ns=301 * S)
    with pytest.raises(ValueError):
        ISSUER.issue('acct-1', NOW, ttl_ns=0)
    with pytest.raises(ValueError):
        ISSUER.issue('acct-1', -1)
    with pytest.raises(ValueError):
        ISSUER.issue('acct-1', NOW, token_id=b'short')
    with pytest.raises(ValueError):
        TokenIssuer(KEY.public_key(), CONFIG)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TokenVerifier(KEY, CONFIG)  # type: ignore[arg-type]


@pytest.mark.parametrize('kwargs', [
    {'max_ttl_ns': 0},
    {'default_ttl_ns': 0},
    {'default_ttl_ns': 20 * 60 * S},
    {'clock_skew_ns': -1},
    {'clock_skew_ns': 11 * 60 * S},
])
def test_token_config_rejects_bad_values(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        TokenConfig(**kwargs)


def test_keys_round_trip_through_pem_files(tmp_path: Path) -> None:
    private_path = tmp_path / 'issuer.pem'
    public_path = tmp_path / 'gate.pub.pem'
    save_private_key(KEY, private_path)
    save_public_key(KEY.public_key(), public_path)
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert public_path.read_text().startswith('-----BEGIN PUBLIC KEY-----')
    with pytest.raises(FileExistsError):
        save_private_key(KEY, private_path)  # never overwrite a signing key
    issuer = TokenIssuer(load_private_key(private_path), CONFIG)
    verifier = TokenVerifier(load_public_key(public_path), CONFIG)
    assert verifier.verify(issuer.issue('acct-9', NOW), NOW).account_id == 'acct-9'
    assert VERIFIER.verify(issuer.issue('acct-9', NOW), NOW).account_id == 'acct-9'


def test_encrypted_private_key_needs_its_passphrase(tmp_path: Path) -> None:
    path = tmp_path / 'issuer.enc.pem'
    save_private_key(KEY, path, passphrase=b'correct horse')
    assert b'ENCRYPTED' in path.read_bytes()
    with pytest.raises((TypeError, ValueError)):
        load_private_key(path)
    loaded = load_private_key(path, passphrase=b'correct horse')
    assert loaded.public_key() == KEY.public_key()


def test_other_key_types_are_refused() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    private_pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    public_pem = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError):
        private_key_from_pem(private_pem)
    with pytest.raises(ValueError):
        public_key_from_pem(public_pem)
