"""calendar.creator (provisioned or client-made), calendar.removed_at and user.removed_at

Existing calendars become provisioned: until now nothing told them apart, and a provisioned
calendar is the one CalDAV clients may not delete or overwrite. A removed calendar or user is
kept (hidden) until its change rows expire, so the change feed can still report what ended.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 19:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

import bridge.store.models


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('calendar', schema=None) as batch_op:
        batch_op.add_column(sa.Column('creator', sa.String(length=16), nullable=False,
                                      server_default='provisioned'))
        batch_op.add_column(sa.Column('removed_at', bridge.store.models.UTCDateTime(), nullable=True))
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('removed_at', bridge.store.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('removed_at')
    with op.batch_alter_table('calendar', schema=None) as batch_op:
        batch_op.drop_column('removed_at')
        batch_op.drop_column('creator')
