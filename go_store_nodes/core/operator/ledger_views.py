"""What the page asks the ledger, as plain values (the node answers through services)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class LedgerUnavailableError(RuntimeError):
    """The ledger did not answer in time (or is not running)."""


@dataclass(frozen=True)
class ReviewView:
    """One review item (srv/ListReviews)."""

    review_id: str
    visit_id: str
    event_id: str
    sku: str
    quantity_delta: int
    reason: str
    state: str
    resolved_by: str
    note: str


@dataclass(frozen=True)
class CartLineView:
    """One line of a cart (srv/GetCart)."""

    sku: str
    name: str
    quantity: int
    unit_price_cents: int
    line_total_cents: int


@dataclass(frozen=True)
class CartView:
    """A visit's current cart."""

    visit_id: str
    found: bool
    message: str
    lines: tuple[CartLineView, ...]
    total_cents: int
    currency: str
    open_review_ids: tuple[str, ...]


class Ledger(Protocol):
    """The ledger's services as the page uses them; raise LedgerUnavailableError."""

    def list_reviews(self, visit_id: str = '') -> list[ReviewView]:
        """Return the open review items (''), or every item of one visit."""

    def get_cart(self, visit_id: str) -> CartView:
        """Return the current cart of a visit."""

    def resolve_review(self, review_id: str, quantity: int, resolved_by: str,
                       note: str) -> tuple[bool, str]:
        """Decide a review item; return (success, message)."""
