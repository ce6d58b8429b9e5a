"""Audit log; attendance per registration; per-event retention, purge counts and attendance follow-up.

Revision ID: 9ec6d7206646
Revises: d4c49fa3396c
Create Date: 2026-11-27 03:59:55.870086

"""
from alembic import op
import sqlalchemy as sa

import app.models.base


# revision identifiers, used by Alembic.
revision = '9ec6d7206646'
down_revision = 'd4c49fa3396c'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_user_id', sa.Integer(), nullable=True),
    sa.Column('actor_label', sa.String(length=320), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('target_type', sa.String(length=40), nullable=False),
    sa.Column('target_id', sa.String(length=100), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['actor_user_id'], ['users.id'], name=op.f('fk_audit_log_actor_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_action_at', ['action', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_actor_user_id'), ['actor_user_id'], unique=False)
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_log_event_at', ['event_id', 'at'], unique=False)

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retention_days', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('personal_data_purged_at', app.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('purged_counts', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('attendance_imported_at', app.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('attendance_summary', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('followup_enabled', sa.Boolean(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('followup_recording_url', sa.String(length=2000), server_default='', nullable=False))

    with op.batch_alter_table('registration_answers', schema=None) as batch_op:
        batch_op.create_index('ix_registration_answers_registration_question', ['registration_id', 'question_id'],
                              unique=False)

    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attended', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('attendance_first_join_at', app.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('attendance_seconds', sa.Integer(), nullable=True))
        batch_op.create_index('ix_registrations_event_attended', ['event_id', 'attended'], unique=False)
        batch_op.create_index('ix_registrations_event_created', ['event_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_registrations_event_email', ['event_id', 'email', 'id'], unique=False)
        batch_op.create_index('ix_registrations_event_name', ['event_id', 'last_name', 'first_name', 'id'],
                              unique=False)



def downgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_index('ix_registrations_event_name')
        batch_op.drop_index('ix_registrations_event_email')
        batch_op.drop_index('ix_registrations_event_created')
        batch_op.drop_index('ix_registrations_event_attended')
        batch_op.drop_column('attendance_seconds')
        batch_op.drop_column('attendance_first_join_at')
        batch_op.drop_column('attended')

    with op.batch_alter_table('registration_answers', schema=None) as batch_op:
        batch_op.drop_index('ix_registration_answers_registration_question')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('followup_recording_url')
        batch_op.drop_column('followup_enabled')
        batch_op.drop_column('attendance_summary')
        batch_op.drop_column('attendance_imported_at')
        batch_op.drop_column('purged_counts')
        batch_op.drop_column('personal_data_purged_at')
        batch_op.drop_column('retention_days')

    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_event_at')
        batch_op.drop_index('ix_audit_log_at')
        batch_op.drop_index(batch_op.f('ix_audit_log_actor_user_id'))
        batch_op.drop_index('ix_audit_log_action_at')

    op.drop_table('audit_log')
