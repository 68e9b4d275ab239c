"""calendar setting bcc_provider: a blind copy of booking confirmations to the owner

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 22:10:00.000000
"""

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calendar', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bcc_provider', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('calendar', schema=None) as batch_op:
        batch_op.drop_column('bcc_provider')
