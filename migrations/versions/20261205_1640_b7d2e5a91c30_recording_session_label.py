"""A course's recordings say which session they are of (`event_recordings.session_label`, e.g. "Session 2:
Day 2"), kept as text so the label outlives a session removed later. Empty for an event without sessions.

Revision ID: b7d2e5a91c30
Revises: 5e3a7c9d1b42
Create Date: 2026-12-05 16:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b7d2e5a91c30'
down_revision = '5e3a7c9d1b42'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('event_recordings') as batch_op:
        batch_op.add_column(sa.Column('session_label', sa.String(length=250), server_default='', nullable=False))


def downgrade():
    with op.batch_alter_table('event_recordings') as batch_op:
        batch_op.drop_column('session_label')
