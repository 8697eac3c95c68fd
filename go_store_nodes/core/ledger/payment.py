"""Payment provider protocol used by the ledger to charge receipts.

The ledger owns the charge row (one per receipt, enforced by a unique constraint) and moves
it ``pending`` -> ``succeeded`` / ``failed``. A provider only has to take money for a
``ChargeRequest`` and must treat ``request.idempotency_key`` as the real-world idempotency
key: the ledger may repeat a request with the same key after a crash, and the provider must
then answer with the first outcome instead of charging twice.
"""

from dataclasses import dataclass
from enum import Enum
from typing import Optional, Protocol, runtime_checkable


class ChargeState(str, Enum):
    """Lifecycle of a charge row."""

    PENDING = 'pending'
    SUCCEEDED = 'succeeded'
    FAILED = 'failed'
    WAIVED = 'waived'


@dataclass(frozen=True)
class ChargeRequest:
    """What the ledger asks a provider to collect for one receipt."""

    charge_id: str
    receipt_id: str
    account_id: str
    amount_cents: int
    currency: str

    @property
    def idempotency_key(self) -> str:
        """Return the key a provider must deduplicate on (stable across retries)."""
        return self.charge_id

    def __post_init__(self) -> None:
        """Validate the request."""
        if self.amount_cents <= 0:
            raise ValueError(f'amount_cents must be > 0, got {self.amount_cents}')
        if len(self.currency) != 3:
            raise ValueError(f'currency must be a 3 letter code, got {self.currency!r}')


@dataclass(frozen=True)
class ChargeResult:
    """A provider's final answer for a request."""

    state: ChargeState
    provider_ref: Optional[str] = None
    failure_reason: Optional[str] = None

    def __post_init__(self) -> None:
        """Validate that the result is final."""
        if self.state not in (ChargeState.SUCCEEDED, ChargeState.FAILED):
            raise ValueError(f'a provider result must be succeeded or failed, got {self.state}')


@runtime_checkable
class PaymentProvider(Protocol):
    """Something that can take money for a receipt, idempotently."""

    @property
    def name(self) -> str:
        """Return the provider name stored on the charge row."""
        ...

    def charge(self, request: ChargeRequest) -> ChargeResult:
        """Collect ``request.amount_cents``; raise if the outcome is unknown (retried later)."""
        ...


class LedgerPaymentProvider:
    """Default provider: the charge is booked in the ledger itself (account on file).

    The charge row written by the ledger *is* the record of the debt; the app server settles
    it off-line against the shopper's stored payment method. Always succeeds, and returns a
    reference derived from the idempotency key so that a repeated request gives the same
    answer.
    """

    @property
    def name(self) -> str:
        """Return ``'ledger'``."""
        return 'ledger'

    def charge(self, request: ChargeRequest) -> ChargeResult:
        """Book the charge; repeated requests yield the same reference."""
        return ChargeResult(
            state=ChargeState.SUCCEEDED, provider_ref=f'ledger:{request.idempotency_key}')
