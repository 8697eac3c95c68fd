"""Create the initial ledger schema.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create every ledger table."""
    op.create_table(
        'accounts',
        sa.Column('account_id', sa.String(length=64), nullable=False),
        sa.Column('created_at_ns', sa.BigInteger(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('account_id', name=op.f('pk_accounts')),
    )
    op.create_table(
        'used_tokens',
        sa.Column('token_id', sa.String(length=64), nullable=False),
        sa.Column('account_id', sa.String(length=64), nullable=False),
        sa.Column('used_at_ns', sa.BigInteger(), nullable=False),
        sa.Column('expires_at_ns', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('token_id', name=op.f('pk_used_tokens')),
    )
    op.create_index(
        op.f('ix_used_tokens_expires_at_ns'), 'used_tokens', ['expires_at_ns'], unique=False)
    op.create_table(
        'visits',
        sa.Column('visit_id', sa.String(length=36), nullable=False),
        sa.Column('account_id', sa.String(length=64), nullable=False),
        sa.Column('token_id', sa.String(length=64), nullable=True),
        sa.Column('opened_at_ns', sa.BigInteger(), nullable=False),
        sa.Column('exit_seen_at_ns', sa.BigInteger(), nullable=True),
        sa.Column('closed_at_ns', sa.BigInteger(), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "state IN ('open', 'closing', 'closed')", name=op.f('ck_visits_state')),
        sa.ForeignKeyConstraint(
            ['account_id'], ['accounts.account_id'],
            name=op.f('fk_visits_account_id_accounts')),
        sa.PrimaryKeyConstraint('visit_id', name=op.f('pk_visits')),
        sa.UniqueConstraint('token_id', name=op.f('uq_visits_token_id')),
    )
    op.create_index(op.f('ix_visits_account_id'), 'visits', ['account_id'], unique=False)
    op.create_index(
        op.f('ix_visits_state_exit_seen_at_ns'), 'visits', ['state', 'exit_seen_at_ns'],
        unique=False)
    op.create_table(
        'cart_events',
        sa.Column('event_id', sa.String(length=128), nullable=False),
        sa.Column('visit_id', sa.String(length=36), nullable=False),
        sa.Column('track_id', sa.String(length=64), nullable=True),
        sa.Column('sku', sa.String(length=64), nullable=False),
        sa.Column('quantity_delta', sa.Integer(), nullable=False),
        sa.Column('unit_price_cents', sa.BigInteger(), nullable=True),
        sa.Column('confidence', sa.Double(), nullable=False),
        sa.Column('evidence_ids', sa.Text(), nullable=True),
        sa.Column('needs_review', sa.Boolean(), nullable=False),
        sa.Column('stamp_ns', sa.BigInteger(), nullable=False),
        sa.Column('applied_at_ns', sa.BigInteger(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('reject_reason', sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "state IN ('applied', 'review', 'reviewed', 'rejected')",
            name=op.f('ck_cart_events_state')),
        sa.CheckConstraint('quantity_delta <> 0', name=op.f('ck_cart_events_delta_not_zero')),
        sa.ForeignKeyConstraint(
            ['visit_id'], ['visits.visit_id'], name=op.f('fk_cart_events_visit_id_visits')),
        sa.PrimaryKeyConstraint('event_id', name=op.f('pk_cart_events')),
    )
    op.create_index(op.f('ix_cart_events_visit_id'), 'cart_events', ['visit_id'], unique=False)
    op.create_table(
        'cart_lines',
        sa.Column('visit_id', sa.String(length=36), nullable=False),
        sa.Column('sku', sa.String(length=64), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('unit_price_cents', sa.BigInteger(), nullable=False),
        sa.CheckConstraint('quantity >= 0', name=op.f('ck_cart_lines_quantity_not_negative')),
        sa.CheckConstraint(
            'unit_price_cents >= 0', name=op.f('ck_cart_lines_price_not_negative')),
        sa.ForeignKeyConstraint(
            ['visit_id'], ['visits.visit_id'], name=op.f('fk_cart_lines_visit_id_visits')),
        sa.PrimaryKeyConstraint('visit_id', 'sku', name=op.f('pk_cart_lines')),
    )
    op.create_table(
        'receipts',
        sa.Column('receipt_id', sa.String(length=36), nullable=False),
        sa.Column('visit_id', sa.String(length=36), nullable=False),
        sa.Column('account_id', sa.String(length=64), nullable=False),
        sa.Column('lines_json', sa.Text(), nullable=False),
        sa.Column('total_cents', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('issued_at_ns', sa.BigInteger(), nullable=False),
        sa.CheckConstraint('total_cents >= 0', name=op.f('ck_receipts_total_not_negative')),
        sa.ForeignKeyConstraint(
            ['visit_id'], ['visits.visit_id'], name=op.f('fk_receipts_visit_id_visits')),
        sa.PrimaryKeyConstraint('receipt_id', name=op.f('pk_receipts')),
        sa.UniqueConstraint('visit_id', name=op.f('uq_receipts_visit_id')),
    )
    op.create_index(
        op.f('ix_receipts_issued_at_ns'), 'receipts', ['issued_at_ns'], unique=False)
    op.create_table(
        'visit_tracks',
        sa.Column('visit_id', sa.String(length=36), nullable=False),
        sa.Column('track_id', sa.String(length=64), nullable=False),
        sa.Column('added_at_ns', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ['visit_id'], ['visits.visit_id'], name=op.f('fk_visit_tracks_visit_id_visits')),
        sa.PrimaryKeyConstraint('visit_id', 'track_id', name=op.f('pk_visit_tracks')),
    )
    op.create_index(
        op.f('ix_visit_tracks_track_id'), 'visit_tracks', ['track_id'], unique=False)
    op.create_table(
        'charges',
        sa.Column('charge_id', sa.String(length=36), nullable=False),
        sa.Column('receipt_id', sa.String(length=36), nullable=False),
        sa.Column('provider', sa.String(length=64), nullable=False),
        sa.Column('provider_ref', sa.String(length=255), nullable=True),
        sa.Column('amount_cents', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('failure_reason', sa.Text(), nullable=True),
        sa.Column('created_at_ns', sa.BigInteger(), nullable=False),
        sa.Column('updated_at_ns', sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'succeeded', 'failed', 'waived')",
            name=op.f('ck_charges_state')),
        sa.CheckConstraint('amount_cents >= 0', name=op.f('ck_charges_amount_not_negative')),
        sa.ForeignKeyConstraint(
            ['receipt_id'], ['receipts.receipt_id'],
            name=op.f('fk_charges_receipt_id_receipts')),
        sa.PrimaryKeyConstraint('charge_id', name=op.f('pk_charges')),
        sa.UniqueConstraint('receipt_id', name=op.f('uq_charges_receipt_id')),
    )
    op.create_index(op.f('ix_charges_state'), 'charges', ['state'], unique=False)
    op.create_table(
        'review_items',
        sa.Column('review_id', sa.String(length=36), nullable=False),
        sa.Column('visit_id', sa.String(length=36), nullable=False),
        sa.Column('event_id', sa.String(length=128), nullable=False),
        sa.Column('reason', sa.String(length=64), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('created_at_ns', sa.BigInteger(), nullable=False),
        sa.Column('resolved_by', sa.String(length=64), nullable=True),
        sa.Column('resolution_note', sa.Text(), nullable=True),
        sa.Column('resolved_quantity', sa.Integer(), nullable=True),
        sa.Column('resolved_at_ns', sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "state IN ('open', 'resolved')", name=op.f('ck_review_items_state')),
        sa.ForeignKeyConstraint(
            ['event_id'], ['cart_events.event_id'],
            name=op.f('fk_review_items_event_id_cart_events')),
        sa.ForeignKeyConstraint(
            ['visit_id'], ['visits.visit_id'], name=op.f('fk_review_items_visit_id_visits')),
        sa.PrimaryKeyConstraint('review_id', name=op.f('pk_review_items')),
        sa.UniqueConstraint('event_id', name=op.f('uq_review_items_event_id')),
    )
    op.create_index(
        op.f('ix_review_items_visit_id_state'), 'review_items', ['visit_id', 'state'],
        unique=False)


def downgrade() -> None:
    """Drop every ledger table (this destroys receipts and charges)."""
    op.drop_index(op.f('ix_review_items_visit_id_state'), table_name='review_items')
    op.drop_table('review_items')
    op.drop_index(op.f('ix_charges_state'), table_name='charges')
    op.drop_table('charges')
    op.drop_index(op.f('ix_visit_tracks_track_id'), table_name='visit_tracks')
    op.drop_table('visit_tracks')
    op.drop_index(op.f('ix_receipts_issued_at_ns'), table_name='receipts')
    op.drop_table('receipts')
    op.drop_table('cart_lines')
    op.drop_index(op.f('ix_cart_events_visit_id'), table_name='cart_events')
    op.drop_table('cart_events')
    op.drop_index(op.f('ix_visits_state_exit_seen_at_ns'), table_name='visits')
    op.drop_index(op.f('ix_visits_account_id'), table_name='visits')
    op.drop_table('visits')
    op.drop_index(op.f('ix_used_tokens_expires_at_ns'), table_name='used_tokens')
    op.drop_table('used_tokens')
    op.drop_table('accounts')
