"""Messages (one row per email or SMS with its status), per-event wording overrides, and SMS opt-in on registrations.

Revision ID: 804cbdc4e828
Revises: 9ec6d7206646
Create Date: 2026-11-27 04:04:14.525054

"""
from alembic import op
import sqlalchemy as sa

import app.models.base


# revision identifiers, used by Alembic.
revision = '804cbdc4e828'
down_revision = '9ec6d7206646'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('message_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('intro', sa.Text(), nullable=False),
    sa.Column('updated_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_message_overrides_event_id_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_overrides')),
    sa.UniqueConstraint('event_id', 'kind', name='uq_message_overrides_event_kind')
    )
    op.create_table('messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=255), nullable=False),
    sa.Column('channel', sa.Enum('email', 'sms', name='message_channel', native_enum=False, length=10), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('status', sa.Enum('queued', 'sending', 'sent', 'failed', 'suppressed', name='message_status', native_enum=False, length=20), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.Column('registration_id', sa.Integer(), nullable=True),
    sa.Column('batch', sa.String(length=120), nullable=True),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('recipient_name', sa.String(length=200), nullable=False),
    sa.Column('subject', sa.String(length=400), nullable=False),
    sa.Column('body_text', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=False),
    sa.Column('attachments', sa.JSON(), nullable=False),
    sa.Column('deadline', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('operation_id', sa.String(length=100), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('delivery_status', sa.String(length=30), nullable=False),
    sa.Column('reserved_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.Column('sent_at', app.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_messages_event_id_events'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], name=op.f('fk_messages_registration_id_registrations'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_messages_dedupe_key'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_messages_batch'), ['batch'], unique=False)
        batch_op.create_index('ix_messages_event_kind_status', ['event_id', 'kind', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_registration_id'), ['registration_id'], unique=False)
        batch_op.create_index('ix_messages_reserved_at', ['reserved_at'], unique=False)
        batch_op.create_index('ix_messages_status_deadline', ['status', 'deadline'], unique=False)

    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('sms_opt_in', sa.Boolean(), server_default='0', nullable=False))



def downgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_column('sms_opt_in')
        batch_op.drop_column('phone')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_status_deadline')
        batch_op.drop_index('ix_messages_reserved_at')
        batch_op.drop_index(batch_op.f('ix_messages_registration_id'))
        batch_op.drop_index(batch_op.f('ix_messages_kind'))
        batch_op.drop_index('ix_messages_event_kind_status')
        batch_op.drop_index(batch_op.f('ix_messages_batch'))

    op.drop_table('messages')
    op.drop_table('message_overrides')
