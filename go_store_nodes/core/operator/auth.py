"""Staff sign-in: scrypt password hashes, the staff directory and a limit on failed tries.

A stored credential is ``scrypt$<n>$<r>$<p>$<salt hex>$<key hex>`` (RFC 7914 parameters;
the key is 32 bytes). Only the hash is written in the configuration; ``go-store
operator-password`` makes one. Verification compares in constant time.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
import hashlib
import hmac
import re
import secrets
import threading

SCHEME = 'scrypt'
DEFAULT_N = 2 ** 14          # CPU/memory cost: ~16 MB and ~50 ms per check on this VM
DEFAULT_R = 8
DEFAULT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MAX_N = 2 ** 20              # refuse configured costs that would stall the server
USER_PATTERN = re.compile(r'^[A-Za-z0-9_.@-]{1,64}$')


class CredentialError(ValueError):
    """A configured credential is malformed (the message names the entry)."""


def hash_password(password: str, salt: bytes | None = None, n: int = DEFAULT_N,
                  r: int = DEFAULT_R, p: int = DEFAULT_P) -> str:
    """Return the stored form of ``password`` (a fresh random salt unless given)."""
    if not password:
        raise ValueError('the password is empty')
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = _derive(password, salt, n, r, p)
    return f'{SCHEME}${n}${r}${p}${salt.hex()}${key.hex()}'


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode('utf-8'), salt=salt, n=n, r=r, p=p,
                          maxmem=256 * n * r + 1024 * 1024, dklen=KEY_BYTES)


@dataclass(frozen=True)
class StoredHash:
    """A parsed stored credential."""

    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    @classmethod
    def parse(cls, text: str) -> StoredHash:
        """Parse ``scrypt$n$r$p$salt$key``; raise CredentialError when malformed."""
        parts = text.split('$')
        if len(parts) != 6 or parts[0] != SCHEME:
            raise CredentialError('not of the form scrypt$n$r$p$salt$key')
        try:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            salt, key = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
        except ValueError:
            raise CredentialError('n, r, p must be integers, salt and key hex') from None
        if n < 2 or n & (n - 1) or n > MAX_N or not 1 <= r <= 64 or not 1 <= p <= 16:
            raise CredentialError(f'scrypt parameters out of range (n={n}, r={r}, p={p})')
        if len(salt) < 8 or len(key) != KEY_BYTES:
            raise CredentialError(f'salt must be >= 8 bytes and key {KEY_BYTES} bytes')
        return cls(n, r, p, salt, key)

    def matches(self, password: str) -> bool:
        """Whether ``password`` derives to the stored key (constant-time comparison)."""
        return hmac.compare_digest(_derive(password, self.salt, self.n, self.r, self.p),
                                   self.key)


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a stored credential; False when it is malformed."""
    try:
        return StoredHash.parse(stored).matches(password)
    except CredentialError:
        return False


def parse_staff_credentials(text: str) -> dict[str, StoredHash]:
    """Parse ``user:hash`` entries separated by commas or whitespace.

    Raise CredentialError naming the first bad entry (a user twice, a bad name or hash).
    """
    staff: dict[str, StoredHash] = {}
    for entry in re.split(r'[\s,]+', text.strip()) if text.strip() else []:
        user, sep, stored = entry.partition(':')
        if not sep or not USER_PATTERN.match(user):
            raise CredentialError(f'entry {entry[:40]!r}: expected user:scrypt$..., user of '
                                  'letters, digits, _ . @ -')
        if user in staff:
            raise CredentialError(f'user {user!r} is listed twice')
        try:
            staff[user] = StoredHash.parse(stored)
        except CredentialError as error:
            raise CredentialError(f'user {user!r}: {error}') from None
    return staff


class StaffDirectory:
    """Checks sign-ins; after ``max_failures`` failed tries a name is locked for a while.

    ``now_s`` is passed in (monotonic seconds) so the lock is testable. The table of
    failures is bounded (``max_tracked`` names, oldest forgotten first), so guessing
    random names cannot grow it.
    """

    def __init__(self, staff: dict[str, StoredHash], max_failures: int = 5,
                 lockout_s: float = 60.0, max_tracked: int = 1000) -> None:
        """Take the parsed credentials and the failure policy."""
        if max_failures < 1 or lockout_s < 0 or max_tracked < 1:
            raise ValueError('max_failures and max_tracked must be >= 1, lockout_s >= 0')
        self._staff = dict(staff)
        self._max_failures = max_failures
        self._lockout_s = lockout_s
        self._max_tracked = max_tracked
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()   # HTTP requests are served on several threads
        # A fixed hash checked for unknown names, so that they take as long as known ones.
        self._decoy = StoredHash.parse(hash_password(secrets.token_hex(8), n=DEFAULT_N))

    @property
    def users(self) -> tuple[str, ...]:
        """Names that may sign in."""
        return tuple(sorted(self._staff))

    def locked(self, user: str, now_s: float) -> bool:
        """Whether ``user`` is locked out after too many failures."""
        count, last = self._failures.get(user, (0, 0.0))
        return count >= self._max_failures and now_s - last < self._lockout_s

    def sign_in(self, user: str, password: str, now_s: float) -> bool:
        """Return True when the name is staff, not locked and the password matches."""
        with self._lock:
            if self.locked(user, now_s):
                return False
        stored = self._staff.get(user)
        ok = (stored or self._decoy).matches(password) and stored is not None
        with self._lock:
            if ok:
                self._failures.pop(user, None)
                return True
            count, last = self._failures.pop(user, (0, 0.0))
            if count >= self._max_failures:   # the lock expired: start counting again
                count = 0
            self._failures[user] = (count + 1, now_s)
            while len(self._failures) > self._max_tracked:
                self._failures.popitem(last=False)
            return False
