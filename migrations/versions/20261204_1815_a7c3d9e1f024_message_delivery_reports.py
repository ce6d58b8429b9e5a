"""Message delivery from ACS delivery reports: the operation's status is kept apart from the delivery outcome
(delivery_status → operation_status; new delivery, delivery_details, delivery_reported_at), messages are found
by their ACS id, and each report event is recorded once.

Revision ID: a7c3d9e1f024
Revises: 804cbdc4e828
Create Date: 2026-12-04 18:15:00.000000

"""
from alembic import op
import sqlalchemy as sa

import app.models.base


# revision identifiers, used by Alembic.
revision = 'a7c3d9e1f024'
down_revision = '804cbdc4e828'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.alter_column('delivery_status', new_column_name='operation_status',
                              existing_type=sa.String(length=30), existing_nullable=False)
        batch_op.add_column(sa.Column('delivery', sa.String(length=30), server_default='', nullable=False))
        batch_op.add_column(sa.Column('delivery_details', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('delivery_reported_at', app.models.base.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index('ix_messages_operation_id', ['operation_id'], unique=False)
    # The server defaults only fill existing rows; the model sets the values from now on.
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.alter_column('delivery', server_default=None, existing_type=sa.String(length=30),
                              existing_nullable=False)
        batch_op.alter_column('delivery_details', server_default=None, existing_type=sa.Text(),
                              existing_nullable=False)

    op.create_table('message_delivery_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=200), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('received_at', app.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_delivery_reports_message_id_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_delivery_reports')),
    sa.UniqueConstraint('event_id', name=op.f('uq_message_delivery_reports_event_id'))
    )
    with op.batch_alter_table('message_delivery_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_delivery_reports_message_id'), ['message_id'], unique=False)


def downgrade():
    with op.batch_alter_table('message_delivery_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_delivery_reports_message_id'))
    op.drop_table('message_delivery_reports')

    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_operation_id')
        batch_op.drop_column('delivery_reported_at')
        batch_op.drop_column('delivery_details')
        batch_op.drop_column('delivery')
        batch_op.alter_column('operation_status', new_column_name='delivery_status',
                              existing_type=sa.String(length=30), existing_nullable=False)
