"""Signed single-use QR check-in tokens (Ed25519).

The app server holds the private key and issues a token that the store app shows as a QR
code; the entry gate holds only the public key and verifies it offline. Text form::

    base64url(payload) '.' base64url(signature)          (no padding)

with the binary payload (big endian)::

    version u8 (=1) | issued_at_ns u64 | expires_at_ns u64 | token_id 16 bytes | account_id
    version u8 (=2) | issued_at_ns u64 | expires_at_ns u64 | token_id 16 bytes
                    | party_size u8 | account_id

``account_id`` is UTF-8 and takes the rest of the payload. ``party_size`` (version 2) is
how many people the holder said walk in on this scan (the app asks before it shows the
code), 1-16; the gate flags a visit that more people walk in on (a tailgater). A version
1 token says nothing about its party (``party_size`` 0).

The signature covers a domain separation prefix followed by the payload, so a signature
made for any other purpose with the same key never verifies as a token. Single use is
enforced by a durable ``consume`` callable (``Ledger.consume_token``) that returns False
when the token id was already used.
"""

import base64
import binascii
from dataclasses import dataclass
from enum import Enum
import os
from pathlib import Path
import re
import secrets
import struct
from typing import Callable, Optional, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

TOKEN_VERSION = 1
TOKEN_VERSION_WITH_PARTY = 2
MAX_PARTY_SIZE = 16
SIGNATURE_DOMAIN = b'go_store/checkin-token/v1\x00'
TOKEN_ID_BYTES = 16
SIGNATURE_BYTES = 64
MAX_ACCOUNT_ID_BYTES = 64
MAX_TOKEN_CHARS = 512
_HEADER = struct.Struct('>BQQ16s')
_PARTY = struct.Struct('>B')
_B64URL = re.compile(r'^[A-Za-z0-9_-]+$')
_U64_MAX = 2 ** 64 - 1

AccountLookup = Callable[[str], bool]
"""``account_exists(account_id) -> bool``."""

ConsumeToken = Callable[[str, str, int, int], bool]
"""``consume(token_id, account_id, now_ns, expires_at_ns) -> bool`` (False on replay)."""


class RejectReason(str, Enum):
    """Machine-readable reason a token was refused."""

    MALFORMED = 'malformed'
    BAD_SIGNATURE = 'bad_signature'
    EXPIRED = 'expired'
    NOT_YET_VALID = 'not_yet_valid'
    UNKNOWN_ACCOUNT = 'unknown_account'
    REPLAYED = 'replayed'


class TokenRejected(Exception):  # noqa: N818 - the name the gate API documents
    """A check-in token was refused; ``reason`` says why."""

    def __init__(self, reason: RejectReason, detail: str = '') -> None:
        """Store the reason code and a human-readable detail."""
        self.reason = reason
        self.detail = detail
        super().__init__(f'{reason.value}: {detail}' if detail else reason.value)


@dataclass(frozen=True)
class TokenConfig:
    """Lifetimes and tolerances of check-in tokens."""

    default_ttl_ns: int = 60 * 1_000_000_000
    max_ttl_ns: int = 15 * 60 * 1_000_000_000
    clock_skew_ns: int = 30 * 1_000_000_000

    def __post_init__(self) -> None:
        """Validate the config."""
        if self.max_ttl_ns <= 0:
            raise ValueError(f'max_ttl_ns must be > 0, got {self.max_ttl_ns}')
        if not 0 < self.default_ttl_ns <= self.max_ttl_ns:
            raise ValueError(
                f'default_ttl_ns must be in (0, max_ttl_ns={self.max_ttl_ns}], '
                f'got {self.default_ttl_ns}')
        if not 0 <= self.clock_skew_ns <= 10 * 60 * 1_000_000_000:
            raise ValueError(
                f'clock_skew_ns must be in [0, 10 min], got {self.clock_skew_ns}')


@dataclass(frozen=True)
class VerifiedToken:
    """The trusted content of a token that passed every check."""

    account_id: str
    token_id: str
    issued_at_ns: int
    expires_at_ns: int
    party_size: int = 0     # people walking in on this scan; 0: not stated (version 1)


def _b64encode(data: bytes) -> str:
    """Encode bytes as unpadded base64url text."""
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode('ascii')


def _b64decode(text: str) -> bytes:
    """Decode strict unpadded base64url text; raise ValueError on anything else."""
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError('not unpadded base64url')
    data = base64.urlsafe_b64decode(text + '=' * (-len(text) % 4))
    if _b64encode(data) != text:
        raise ValueError('non-canonical base64url')
    return data


def _signed_message(payload: bytes) -> bytes:
    """Return the bytes actually signed for a payload."""
    return SIGNATURE_DOMAIN + payload


def _check_account_id(account_id: str) -> bytes:
    """Validate an account id and return its UTF-8 bytes."""
    if not isinstance(account_id, str) or not account_id:
        raise ValueError('account_id must be a non-empty string')
    encoded = account_id.encode('utf-8')
    if len(encoded) > MAX_ACCOUNT_ID_BYTES:
        raise ValueError(f'account_id must be at most {MAX_ACCOUNT_ID_BYTES} bytes')
    if not account_id.isprintable():
        raise ValueError('account_id must be printable')
    return encoded


class TokenIssuer:
    """Issues signed check-in tokens (runs on the app server, holds the private key)."""

    def __init__(self, private_key: Ed25519PrivateKey, config: Optional[TokenConfig] = None
                 ) -> None:
        """Keep the signing key and config."""
        if not isinstance(private_key, Ed25519PrivateKey):
            raise ValueError('private_key must be an Ed25519PrivateKey')
        self._key = private_key
        self._config = config or TokenConfig()

    def issue(self, account_id: str, now_ns: int, ttl_ns: Optional[int] = None,
              token_id: Optional[bytes] = None, party_size: Optional[int] = None) -> str:
        """Return the QR text of a new token valid from ``now_ns`` for ``ttl_ns``.

        ``party_size``: how many people walk in on it (a version 2 token); None issues a
        version 1 token, which does not say.
        """
        encoded_account = _check_account_id(account_id)
        ttl = self._config.default_ttl_ns if ttl_ns is None else ttl_ns
        if not 0 < ttl <= self._config.max_ttl_ns:
            raise ValueError(f'ttl_ns must be in (0, {self._config.max_ttl_ns}], got {ttl}')
        if not 0 <= now_ns <= _U64_MAX - ttl:
            raise ValueError(f'now_ns out of range: {now_ns}')
        raw_id = secrets.token_bytes(TOKEN_ID_BYTES) if token_id is None else token_id
        if len(raw_id) != TOKEN_ID_BYTES:
            raise ValueError(f'token_id must be {TOKEN_ID_BYTES} bytes')
        if party_size is None:
            payload = _HEADER.pack(TOKEN_VERSION, now_ns, now_ns + ttl, raw_id)
        else:
            if isinstance(party_size, bool) or not isinstance(party_size, int) \
                    or not 1 <= party_size <= MAX_PARTY_SIZE:
                raise ValueError(f'party_size must be an int in [1, {MAX_PARTY_SIZE}], '
                                 f'got {party_size!r}')
            payload = _HEADER.pack(TOKEN_VERSION_WITH_PARTY, now_ns, now_ns + ttl,
                                   raw_id) + _PARTY.pack(party_size)
        payload += encoded_account
        signature = self._key.sign(_signed_message(payload))
        return f'{_b64encode(payload)}.{_b64encode(signature)}'


class TokenVerifier:
    """Verifies check-in tokens at the gate (holds only the public key).

    ``account_exists`` (optional) refuses tokens of unknown or closed accounts.
    ``consume`` (optional but needed for single use) durably records the token id and
    returns False when it was already recorded; without it the caller must consume the
    token itself (``Ledger.open_visit(token_id=...)`` does).
    """

    def __init__(self, public_key: Ed25519PublicKey, config: Optional[TokenConfig] = None,
                 account_exists: Optional[AccountLookup] = None,
                 consume: Optional[ConsumeToken] = None) -> None:
        """Keep the verification key, config and callables."""
        if not isinstance(public_key, Ed25519PublicKey):
            raise ValueError('public_key must be an Ed25519PublicKey')
        self._key = public_key
        self._config = config or TokenConfig()
        self._account_exists = account_exists
        self._consume = consume

    def verify(self, token_text: str, now_ns: int) -> VerifiedToken:
        """Return the token content or raise ``TokenRejected`` with a reason code."""
        payload, signature = self._decode(token_text)
        try:
            self._key.verify(signature, _signed_message(payload))
        except InvalidSignature:
            raise TokenRejected(RejectReason.BAD_SIGNATURE) from None
        version, issued_at_ns, expires_at_ns, raw_id = _HEADER.unpack_from(payload)
        start, party_size = _HEADER.size, 0
        if version == TOKEN_VERSION_WITH_PARTY:
            (party_size,) = _PARTY.unpack_from(payload, start)
            start += _PARTY.size
            if not 1 <= party_size <= MAX_PARTY_SIZE:
                raise TokenRejected(RejectReason.MALFORMED,
                                    f'party size {party_size} not in [1, {MAX_PARTY_SIZE}]')
        elif version != TOKEN_VERSION:
            raise TokenRejected(RejectReason.MALFORMED, f'unsupported version {version}')
        try:
            account_id = payload[start:].decode('utf-8')
            _check_account_id(account_id)
        except ValueError as error:
            raise TokenRejected(RejectReason.MALFORMED, f'bad account id: {error}') from None
        if expires_at_ns <= issued_at_ns:
            raise TokenRejected(RejectReason.MALFORMED, 'expires before it is issued')
        if expires_at_ns - issued_at_ns > self._config.max_ttl_ns:
            raise TokenRejected(RejectReason.MALFORMED, 'lifetime longer than max_ttl_ns')
        skew = self._config.clock_skew_ns
        if now_ns + skew < issued_at_ns:
            raise TokenRejected(RejectReason.NOT_YET_VALID, f'issued at {issued_at_ns}')
        if now_ns - skew >= expires_at_ns:
            raise TokenRejected(RejectReason.EXPIRED, f'expired at {expires_at_ns}')
        if self._account_exists is not None and not self._account_exists(account_id):
            raise TokenRejected(RejectReason.UNKNOWN_ACCOUNT)
        token = VerifiedToken(
            account_id=account_id, token_id=raw_id.hex(), issued_at_ns=issued_at_ns,
            expires_at_ns=expires_at_ns, party_size=party_size)
        if self._consume is not None and not self._consume(
                token.token_id, account_id, now_ns, expires_at_ns):
            raise TokenRejected(RejectReason.REPLAYED, f'token {token.token_id} already used')
        return token

    @staticmethod
    def _decode(token_text: str) -> tuple[bytes, bytes]:
        """Split and decode the QR text; raise ``TokenRejected(MALFORMED)``."""
        if not isinstance(token_text, str):
            raise TokenRejected(RejectReason.MALFORMED, 'not text')
        text = token_text.strip()
        if not text or len(text) > MAX_TOKEN_CHARS:
            raise TokenRejected(RejectReason.MALFORMED, 'empty or too long')
        parts = text.split('.')
        if len(parts) != 2:
            raise TokenRejected(RejectReason.MALFORMED, 'expected payload.signature')
        try:
            payload = _b64decode(parts[0])
            signature = _b64decode(parts[1])
        except (ValueError, binascii.Error):
            raise TokenRejected(RejectReason.MALFORMED, 'bad base64url') from None
        if len(signature) != SIGNATURE_BYTES:
            raise TokenRejected(RejectReason.MALFORMED, 'bad signature length')
        header_size = _HEADER.size + (_PARTY.size if payload[:1] == bytes(
            [TOKEN_VERSION_WITH_PARTY]) else 0)
        if len(payload) <= header_size:
            raise TokenRejected(RejectReason.MALFORMED, 'payload too short')
        return payload, signature


def generate_private_key() -> Ed25519PrivateKey:
    """Return a new random Ed25519 signing key."""
    return Ed25519PrivateKey.generate()


def private_key_to_pem(key: Ed25519PrivateKey, passphrase: Optional[bytes] = None) -> bytes:
    """Serialize a private key as PKCS#8 PEM, encrypted when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase
        else serialization.NoEncryption())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def public_key_to_pem(key: Ed25519PublicKey) -> bytes:
    """Serialize a public key as SubjectPublicKeyInfo PEM."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def private_key_from_pem(data: bytes, passphrase: Optional[bytes] = None
                         ) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from PEM; raise ValueError for any other key."""
    key = serialization.load_pem_private_key(data, password=passphrase)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f'expected an Ed25519 private key, got {type(key).__name__}')
    return key


def public_key_from_pem(data: bytes) -> Ed25519PublicKey:
    """Load an Ed25519 public key from PEM; raise ValueError for any other key."""
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f'expected an Ed25519 public key, got {type(key).__name__}')
    return key


def save_private_key(key: Ed25519PrivateKey, path: Union[str, Path],
                     passphrase: Optional[bytes] = None) -> None:
    """Write a private key as PEM to a new file readable by its owner only."""
    data = private_key_to_pem(key, passphrase)
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'wb') as handle:
        handle.write(data)


def save_public_key(key: Ed25519PublicKey, path: Union[str, Path]) -> None:
    """Write a public key as PEM."""
    Path(path).write_bytes(public_key_to_pem(key))


def load_private_key(path: Union[str, Path], passphrase: Optional[bytes] = None
                     ) -> Ed25519PrivateKey:
    """Read a PEM private key file."""
    return private_key_from_pem(Path(path).read_bytes(), passphrase)


def load_public_key(path: Union[str, Path]) -> Ed25519PublicKey:
    """Read a PEM public key file."""
    return public_key_from_pem(Path(path).read_bytes())
