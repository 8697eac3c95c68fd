"""Money core of the store: check-in tokens, visits, carts, receipts and charges.

Pure Python (SQLAlchemy, Alembic, cryptography); no ROS imports. See docs/ledger.md.
"""

from go_store_nodes.core.ledger.ledger import (
    Cart,
    CartEvent,
    CartItem,
    Charge,
    DatabaseUnavailableError,
    EventOutcome,
    EVIDENCE_ID_LENGTH,
    HeldForReview,
    is_retryable_database_error,
    Ledger,
    LedgerConfig,
    LedgerError,
    MAX_EVIDENCE_IDS,
    migrate,
    PurgeReport,
    Receipt,
    Review,
    ReviewReason,
    TokenReplayedError,
    UnknownAccountError,
    UnknownReviewError,
    UnknownVisitError,
    VisitInfo,
)
from go_store_nodes.core.ledger.payment import (
    ChargeRequest,
    ChargeResult,
    ChargeState,
    LedgerPaymentProvider,
    PaymentProvider,
)
from go_store_nodes.core.ledger.tokens import (
    RejectReason,
    TokenConfig,
    TokenIssuer,
    TokenRejected,
    TokenVerifier,
    VerifiedToken,
)

__all__ = [
    'EVIDENCE_ID_LENGTH', 'MAX_EVIDENCE_IDS',
    'Cart', 'CartEvent', 'CartItem', 'Charge', 'ChargeRequest', 'ChargeResult', 'ChargeState',
    'DatabaseUnavailableError',
    'EventOutcome', 'HeldForReview', 'is_retryable_database_error', 'Ledger', 'LedgerConfig',
    'LedgerError',
    'LedgerPaymentProvider', 'PaymentProvider', 'PurgeReport', 'Receipt', 'RejectReason',
    'Review', 'ReviewReason', 'TokenConfig', 'TokenIssuer', 'TokenRejected',
    'TokenReplayedError', 'TokenVerifier', 'UnknownAccountError', 'UnknownReviewError',
    'UnknownVisitError', 'VerifiedToken', 'VisitInfo', 'migrate',
]
