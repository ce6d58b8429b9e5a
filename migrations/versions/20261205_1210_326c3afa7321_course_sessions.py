"""Course sessions: an event's dated sessions, each with its own Teams meeting, and attendance per session.

Revision ID: 326c3afa7321
Revises: 9b084d2568c1
Create Date: 2026-12-05 12:10:24.851183

"""
from alembic import op
import sqlalchemy as sa

import app.models.base


# revision identifiers, used by Alembic.
revision = '326c3afa7321'
down_revision = '9b084d2568c1'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('event_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), server_default='', nullable=False),
    sa.Column('starts_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('provisioning_status', sa.Enum('not_requested', 'pending', 'ready', 'failed', name='provisioning_status', native_enum=False, length=20), nullable=False),
    sa.Column('provisioning_error', sa.Text(), server_default='', nullable=False),
    sa.Column('graph_event_id', sa.String(length=255), nullable=True),
    sa.Column('online_meeting_id', sa.String(length=512), nullable=True),
    sa.Column('join_url', sa.Text(), nullable=True),
    sa.Column('join_meeting_id', sa.String(length=64), nullable=True),
    sa.Column('join_passcode', sa.String(length=64), nullable=True),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_event_sessions_ends_after_start')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_sessions_event_id_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_sessions')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('event_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_sessions_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_event_sessions_starts_at'), ['starts_at'], unique=False)

    op.create_table('session_attendances',
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=False),
    sa.Column('first_joined_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_seen_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('attended', sa.Boolean(), nullable=True),
    sa.Column('seconds', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], name=op.f('fk_session_attendances_registration_id_registrations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['session_id'], ['event_sessions.id'], name=op.f('fk_session_attendances_session_id_event_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('session_id', 'registration_id', name=op.f('pk_session_attendances'))
    )
    with op.batch_alter_table('session_attendances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_session_attendances_registration_id'), ['registration_id'], unique=False)



def downgrade():
    with op.batch_alter_table('session_attendances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_session_attendances_registration_id'))

    op.drop_table('session_attendances')
    with op.batch_alter_table('event_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_sessions_starts_at'))
        batch_op.drop_index(batch_op.f('ix_event_sessions_event_id'))

    op.drop_table('event_sessions')
