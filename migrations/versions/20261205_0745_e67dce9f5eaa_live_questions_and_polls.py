"""Live questions and polls beside the call: attendees' questions with upvotes, the event's Q&A settings,
and polls with their options and one vote per registration.

Revision ID: e67dce9f5eaa
Revises: c4f1a9e27b3d
Create Date: 2026-12-05 07:43:03.784466

"""
from alembic import op
import sqlalchemy as sa

import app.models.base


# revision identifiers, used by Alembic.
revision = 'e67dce9f5eaa'
down_revision = 'c4f1a9e27b3d'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('live_polls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('prompt', sa.String(length=300), nullable=False),
    sa.Column('multiple', sa.Boolean(), nullable=False),
    sa.Column('status', sa.Enum('draft', 'open', 'closed', name='poll_status', native_enum=False, length=20), nullable=False),
    sa.Column('opened_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_live_polls_event_id_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_live_polls'))
    )
    with op.batch_alter_table('live_polls', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_polls_event_id'), ['event_id'], unique=False)

    op.create_table('live_settings',
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('allow_anonymous', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('moderate_questions', sa.Boolean(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_live_settings_event_id_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_live_settings'))
    )
    op.create_table('live_poll_options',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('poll_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['poll_id'], ['live_polls.id'], name=op.f('fk_live_poll_options_poll_id_live_polls'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_live_poll_options'))
    )
    with op.batch_alter_table('live_poll_options', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_poll_options_poll_id'), ['poll_id'], unique=False)

    op.create_table('live_poll_votes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('poll_id', sa.Integer(), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=True),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['poll_id'], ['live_polls.id'], name=op.f('fk_live_poll_votes_poll_id_live_polls'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], name=op.f('fk_live_poll_votes_registration_id_registrations'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_live_poll_votes')),
    sa.UniqueConstraint('poll_id', 'registration_id', name='uq_live_poll_votes_poll_registration')
    )
    with op.batch_alter_table('live_poll_votes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_poll_votes_registration_id'), ['registration_id'], unique=False)

    op.create_table('live_questions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.String(length=500), nullable=False),
    sa.Column('anonymous', sa.Boolean(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'approved', 'answered', 'dismissed', name='live_question_status', native_enum=False, length=20), nullable=False),
    sa.Column('pinned', sa.Boolean(), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('answered_live', sa.Boolean(), nullable=False),
    sa.Column('answered_by_id', sa.Integer(), nullable=True),
    sa.Column('answered_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['answered_by_id'], ['users.id'], name=op.f('fk_live_questions_answered_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_live_questions_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], name=op.f('fk_live_questions_registration_id_registrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_live_questions'))
    )
    with op.batch_alter_table('live_questions', schema=None) as batch_op:
        batch_op.create_index('ix_live_questions_event_status', ['event_id', 'status', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_live_questions_registration_id'), ['registration_id'], unique=False)

    op.create_table('live_poll_vote_choices',
    sa.Column('vote_id', sa.Integer(), nullable=False),
    sa.Column('option_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['option_id'], ['live_poll_options.id'], name=op.f('fk_live_poll_vote_choices_option_id_live_poll_options'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['vote_id'], ['live_poll_votes.id'], name=op.f('fk_live_poll_vote_choices_vote_id_live_poll_votes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('vote_id', 'option_id', name=op.f('pk_live_poll_vote_choices'))
    )
    with op.batch_alter_table('live_poll_vote_choices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_poll_vote_choices_option_id'), ['option_id'], unique=False)

    op.create_table('live_question_votes',
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['question_id'], ['live_questions.id'], name=op.f('fk_live_question_votes_question_id_live_questions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], name=op.f('fk_live_question_votes_registration_id_registrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('question_id', 'registration_id', name=op.f('pk_live_question_votes'))
    )
    with op.batch_alter_table('live_question_votes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_question_votes_registration_id'), ['registration_id'], unique=False)



def downgrade():
    with op.batch_alter_table('live_question_votes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_question_votes_registration_id'))

    op.drop_table('live_question_votes')
    with op.batch_alter_table('live_poll_vote_choices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_poll_vote_choices_option_id'))

    op.drop_table('live_poll_vote_choices')
    with op.batch_alter_table('live_questions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_questions_registration_id'))
        batch_op.drop_index('ix_live_questions_event_status')

    op.drop_table('live_questions')
    with op.batch_alter_table('live_poll_votes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_poll_votes_registration_id'))

    op.drop_table('live_poll_votes')
    with op.batch_alter_table('live_poll_options', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_poll_options_poll_id'))

    op.drop_table('live_poll_options')
    op.drop_table('live_settings')
    with op.batch_alter_table('live_polls', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_polls_event_id'))

    op.drop_table('live_polls')
