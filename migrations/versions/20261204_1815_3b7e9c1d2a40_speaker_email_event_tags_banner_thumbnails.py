"""Speakers' optional email addresses (Teams presenters), events' catalogue tags and banner thumbnails.

Revision ID: 3b7e9c1d2a40
Revises: a7c3d9e1f024
Create Date: 2026-12-04 18:15:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3b7e9c1d2a40'
down_revision = 'a7c3d9e1f024'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('speakers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email', sa.String(length=320), server_default='', nullable=False))

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('banner_thumb_filename', sa.String(length=100), nullable=True))

    op.create_table(
        'event_tags',
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('tag', sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_tags_event_id_events'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('event_id', 'tag', name=op.f('pk_event_tags')),
    )
    with op.batch_alter_table('event_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_tags_tag'), ['tag'], unique=False)


def downgrade():
    with op.batch_alter_table('event_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_tags_tag'))
    op.drop_table('event_tags')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('banner_thumb_filename')

    with op.batch_alter_table('speakers', schema=None) as batch_op:
        batch_op.drop_column('email')
