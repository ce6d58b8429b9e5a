"""Recurring event series: the rule an event was repeated by, and each occurrence's link to it.

On SQLite the events table is rebuilt to add the foreign key (foreign keys are off during migrations,
see migrations/env.py); its rows, indexes and constraints are kept.

Revision ID: 3fe1de6a9da7
Revises: 326c3afa7321
Create Date: 2026-12-05 12:23:02.554879

"""
from alembic import op
import sqlalchemy as sa

import app.models.base


# revision identifiers, used by Alembic.
revision = '3fe1de6a9da7'
down_revision = '326c3afa7321'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('event_series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('rule', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('created_at', app.models.base.UTCDateTime(timezone=True), server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_event_series_owner_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_series')),
    sqlite_autoincrement=True
    )
    with op.batch_alter_table('event_series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_series_owner_id'), ['owner_id'], unique=False)

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('series_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_events_series_id'), ['series_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_events_series_id_event_series'), 'event_series', ['series_id'], ['id'], ondelete='SET NULL')



def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_events_series_id_event_series'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_events_series_id'))
        batch_op.drop_column('series_id')

    with op.batch_alter_table('event_series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_series_owner_id'))

    op.drop_table('event_series')
