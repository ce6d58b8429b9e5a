"""After the event: the Teams meeting's recordings imported for the organizer's approval
(event_recordings, events.recordings_state/_checked_at), the scopes a Microsoft connection was granted
(microsoft_connection.granted_scopes), and the feedback survey (events.feedback_enabled/_questions,
feedback_responses: one per registration).

Revision ID: bfc2e710cabc
Revises: e67dce9f5eaa
Create Date: 2026-12-05 07:46:41.159425

"""
from alembic import op
import sqlalchemy as sa

import app.models.base


# revision identifiers, used by Alembic.
revision = 'bfc2e710cabc'
down_revision = 'e67dce9f5eaa'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('event_recordings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('graph_id', sa.String(length=512), nullable=False),
    sa.Column('recorded_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('recording_ended_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('stored_name', sa.String(length=100), nullable=False),
    sa.Column('transcript_stored_name', sa.String(length=100), nullable=True),
    sa.Column('share_transcript', sa.Boolean(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'approved', 'declined', name='recording_status', native_enum=False, length=20), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('imported_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'], name=op.f('fk_event_recordings_decided_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_recordings_event_id_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_recordings')),
    sa.UniqueConstraint('event_id', 'graph_id', name='uq_event_recordings_event_graph')
    )
    with op.batch_alter_table('event_recordings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_recordings_event_id'), ['event_id'], unique=False)

    op.create_table('feedback_responses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint('rating BETWEEN 1 AND 5', name=op.f('ck_feedback_responses_rating_range')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_feedback_responses_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], name=op.f('fk_feedback_responses_registration_id_registrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_responses')),
    sa.UniqueConstraint('registration_id', name=op.f('uq_feedback_responses_registration_id'))
    )
    with op.batch_alter_table('feedback_responses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feedback_responses_event_id'), ['event_id'], unique=False)

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recordings_state', sa.String(length=30), server_default='', nullable=False))
        batch_op.add_column(sa.Column('recordings_checked_at', app.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('feedback_enabled', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('feedback_questions', sa.JSON(), nullable=True))

    with op.batch_alter_table('microsoft_connection', schema=None) as batch_op:
        batch_op.add_column(sa.Column('granted_scopes', sa.Text(), server_default='', nullable=False))



def downgrade():
    with op.batch_alter_table('microsoft_connection', schema=None) as batch_op:
        batch_op.drop_column('granted_scopes')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('feedback_questions')
        batch_op.drop_column('feedback_enabled')
        batch_op.drop_column('recordings_checked_at')
        batch_op.drop_column('recordings_state')

    with op.batch_alter_table('feedback_responses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_responses_event_id'))

    op.drop_table('feedback_responses')
    with op.batch_alter_table('event_recordings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_recordings_event_id'))

    op.drop_table('event_recordings')
