"""Review items about a whole visit (no cart event): a visit whose people were lost.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Let review_items.event_id be NULL: the item is about the visit, not one event."""
    with op.batch_alter_table('review_items') as batch:
        batch.alter_column('event_id', existing_type=sa.String(length=128), nullable=True)


def downgrade() -> None:
    """Drop visit review items, then make review_items.event_id required again."""
    op.execute('DELETE FROM review_items WHERE event_id IS NULL')
    with op.batch_alter_table('review_items') as batch:
        batch.alter_column('event_id', existing_type=sa.String(length=128), nullable=False)
