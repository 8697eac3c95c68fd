"""Edge of the gate and cart ledger nodes: messages <-> ledger core values, paths and URLs.

Track ids are ``uint64`` on the wire and decimal strings in the ledger (which also takes
ids from other sources); 0 means "no track". Stamps are ``builtin_interfaces/Time`` on
the wire and integer nanoseconds in the core.
"""

from __future__ import annotations

import math
import os
import pathlib
from typing import Mapping, Sequence

from builtin_interfaces.msg import Time
from go_store.msg import (
    CartEvent,
    CheckInResult,
    Receipt,
    ReceiptLine,
    ReviewItem,
    Track,
    TrackArray,
    Visit,
)
from sqlalchemy.engine import make_url
from std_msgs.msg import Header

from ..core import ledger
from ..core.gate import CheckInOutcome, TrackObservation, VisitStatus, VisitUpdate
from ..core.ledger.models import REASON_LENGTH
from .share import share_dir

NS_PER_SECOND = 1_000_000_000
UINT64_MAX = 2 ** 64 - 1


def stamp_to_ns(stamp: Time) -> int:
    """Return a message stamp as integer nanoseconds since the epoch."""
    return int(stamp.sec) * NS_PER_SECOND + int(stamp.nanosec)


def ns_to_stamp(stamp_ns: int) -> Time:
    """Return integer nanoseconds as a message stamp."""
    seconds, nanoseconds = divmod(int(stamp_ns), NS_PER_SECOND)
    return Time(sec=seconds, nanosec=nanoseconds)


def track_id_to_str(track_id: int) -> str:
    """Return the ledger form of a wire track id."""
    return str(int(track_id))


def track_id_from_str(track_id: str) -> int:
    """Return the wire form of a ledger track id; raise ValueError if it is not a uint64."""
    value = int(track_id)
    if not 0 <= value <= UINT64_MAX or str(value) != track_id:
        raise ValueError(f'track id {track_id!r} is not a uint64 in decimal')
    return value


def resolve_database_url(url: str) -> str:
    """Return ``url`` with ``~`` and ``$VARS`` expanded in a SQLite path, its folder created.

    ``sqlite:///~/.local/share/go_store/ledger.sqlite`` becomes an absolute file path.
    Other databases (PostgreSQL) are returned as given.
    """
    if not url.strip():
        raise ValueError('database_url is empty; give a SQLAlchemy URL such as '
                         'sqlite:///~/.local/share/go_store/ledger.sqlite')
    parsed = make_url(url)
    if parsed.get_backend_name() != 'sqlite' or not parsed.database \
            or parsed.database == ':memory:':
        return url
    path = pathlib.Path(os.path.expandvars(os.path.expanduser(parsed.database))).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    return parsed.set(database=str(path)).render_as_string(hide_password=False)


def printable_url(url: str) -> str:
    """Return a database URL with its password hidden, for logs and diagnostics."""
    return make_url(url).render_as_string(hide_password=True)


def resolve_share_path(path: str) -> pathlib.Path:
    """Return ``path`` with ``~`` expanded; a relative path is taken from the package share."""
    expanded = pathlib.Path(os.path.expanduser(path))
    return expanded if expanded.is_absolute() else share_dir() / expanded


def track_observations(msg: TrackArray) -> list[TrackObservation]:
    """Return the core view of every track of a TrackArray; raise ValueError if malformed."""
    tracks = []
    seen = set()
    for track in msg.tracks:
        x_m, y_m = float(track.position.x), float(track.position.y)
        if not (math.isfinite(x_m) and math.isfinite(y_m)):
            raise ValueError(f'track {track.track_id} has a non-finite position')
        if track.track_id in seen:
            raise ValueError(f'track {track.track_id} appears twice')
        seen.add(track.track_id)
        # A track's stamp is that of the detection last fused into it (0: not given).
        seen_ns = stamp_to_ns(track.header.stamp) or None
        tracks.append(TrackObservation(
            track_id=track_id_to_str(track.track_id), x_m=x_m, y_m=y_m,
            is_associate=track.role == Track.ROLE_ASSOCIATE, seen_ns=seen_ns))
    return tracks


def check_in_result_msg(outcome: CheckInOutcome, header: Header) -> CheckInResult:
    """Return the CheckInResult of an outcome, stamped with the CheckIn's header."""
    return CheckInResult(
        header=header, gate_id=outcome.gate_id, accepted=outcome.accepted,
        reason=outcome.reason, detail=outcome.detail, visit_id=outcome.visit_id)


def visit_msg(update: VisitUpdate, frame_id: str) -> Visit:
    """Return the Visit message of a visit update (stamp: check-in or exit time)."""
    return Visit(
        header=Header(stamp=ns_to_stamp(update.stamp_ns), frame_id=frame_id),
        visit_id=update.visit_id, account_id=update.account_id,
        track_ids=[track_id_from_str(t) for t in update.track_ids], gate_id=update.gate_id,
        status=Visit.STARTED if update.status is VisitStatus.STARTED else Visit.ENDED)


def cart_event_from_msg(msg: CartEvent) -> tuple[ledger.CartEvent, tuple[str, ...]]:
    """Return the core cart event of a CartEvent and what was trimmed to fit the ledger.

    An over-long review reason is truncated and evidence ids are bounded (the first
    ``MAX_EVIDENCE_IDS``, each cut to ``EVIDENCE_ID_LENGTH``) rather than losing the event:
    the quantities still count and the reason still sends it to review. Raise ValueError
    when the event itself is malformed.
    """
    trimmed = []
    reason = msg.review_reason
    if len(reason) > REASON_LENGTH:
        reason = reason[:REASON_LENGTH - 1] + '\u2026'
        trimmed.append('review_reason')
    evidence = tuple(msg.evidence_ids)
    if len(evidence) > ledger.MAX_EVIDENCE_IDS:
        evidence = evidence[:ledger.MAX_EVIDENCE_IDS]
        trimmed.append('evidence_ids')
    if any(len(item) > ledger.EVIDENCE_ID_LENGTH for item in evidence):
        evidence = tuple(item[:ledger.EVIDENCE_ID_LENGTH] for item in evidence)
        trimmed.append('evidence_id_length')
    event = ledger.CartEvent(
        event_id=msg.event_id, visit_id=msg.visit_id, sku=msg.sku,
        quantity_delta=int(msg.quantity_delta), stamp_ns=stamp_to_ns(msg.header.stamp),
        track_id=track_id_to_str(msg.track_id) if msg.track_id else None,
        confidence=float(msg.confidence), evidence_ids=evidence,
        needs_review=bool(msg.needs_review), review_reason=reason,
        account_id=msg.account_id or None)
    return event, tuple(trimmed)


def receipt_lines(items: Sequence[ledger.CartItem], names: Mapping[str, str]) -> list[ReceiptLine]:
    """Return receipt lines with the catalog display names (the SKU when not in it)."""
    return [ReceiptLine(sku=item.sku, name=names.get(item.sku, item.sku),
                        quantity=item.quantity, unit_price_cents=item.unit_price_cents,
                        line_total_cents=item.line_total_cents) for item in items]


def receipt_msg(receipt: ledger.Receipt, names: Mapping[str, str], frame_id: str) -> Receipt:
    """Return the ISSUED Receipt message of a receipt, stamped with its issue time."""
    return Receipt(
        header=Header(stamp=ns_to_stamp(receipt.issued_at_ns), frame_id=frame_id),
        receipt_id=receipt.receipt_id, visit_id=receipt.visit_id,
        account_id=receipt.account_id, status=Receipt.ISSUED,
        lines=receipt_lines(receipt.items, names), total_cents=receipt.total_cents,
        currency=receipt.currency)


def held_msg(held: ledger.HeldForReview, cart: ledger.Cart, names: Mapping[str, str],
             stamp_ns: int, frame_id: str) -> Receipt:
    """Return the HELD_FOR_REVIEW notice of a visit: its current cart and open reviews."""
    return Receipt(
        header=Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id), receipt_id='',
        visit_id=held.visit_id, account_id=cart.account_id, status=Receipt.HELD_FOR_REVIEW,
        lines=receipt_lines(cart.items, names), total_cents=cart.total_cents,
        currency=cart.currency,
        open_review_ids=list(held.review_ids))


def review_item_msg(review: ledger.Review) -> ReviewItem:
    """Return the ReviewItem message of a review."""
    return ReviewItem(
        review_id=review.review_id, visit_id=review.visit_id, event_id=review.event_id,
        sku=review.sku, quantity_delta=review.quantity_delta, reason=review.reason,
        state=review.state, resolved_by=review.resolved_by or '',
        note=review.resolution_note or '')
