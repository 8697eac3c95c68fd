"""Record when each receipt was announced, so none is lost to a crash or a failed charge.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add receipts.published_at_ns; receipts already there count as announced."""
    with op.batch_alter_table('receipts') as batch:
        batch.add_column(sa.Column('published_at_ns', sa.BigInteger(), nullable=True))
    op.execute('UPDATE receipts SET published_at_ns = issued_at_ns')


def downgrade() -> None:
    """Drop receipts.published_at_ns."""
    with op.batch_alter_table('receipts') as batch:
        batch.drop_column('published_at_ns')
