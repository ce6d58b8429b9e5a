"""Personal join links kept encrypted (and the last revoked one), leave times, and each event's join settings:
call experience, join window, grace period after the end, recording link.

Revision ID: 180fba8e52f8
Revises: e9e26ccd994a
Create Date: 2026-11-27 04:01:48.399348

"""
from alembic import op
import sqlalchemy as sa

import app.models.base


# revision identifiers, used by Alembic.
revision = '180fba8e52f8'
down_revision = 'e9e26ccd994a'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('call_experience', sa.String(length=20), server_default='call_with_chat', nullable=False))
        batch_op.add_column(sa.Column('join_opens_minutes', sa.Integer(), server_default='15', nullable=False))
        batch_op.add_column(sa.Column('join_grace_minutes', sa.Integer(), server_default='30', nullable=False))
        batch_op.add_column(sa.Column('recording_url', sa.Text(), server_default='', nullable=False))

    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('join_token_encrypted', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('join_token_revoked_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('last_left_at', app.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_registrations_join_token_revoked_hash'), ['join_token_revoked_hash'], unique=False)


def downgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registrations_join_token_revoked_hash'))
        batch_op.drop_column('last_left_at')
        batch_op.drop_column('join_token_revoked_hash')
        batch_op.drop_column('join_token_encrypted')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('recording_url')
        batch_op.drop_column('join_grace_minutes')
        batch_op.drop_column('join_opens_minutes')
        batch_op.drop_column('call_experience')
