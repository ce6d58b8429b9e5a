"""An event's title and description in other languages (`event_texts`: one row per event and language).

Revision ID: c2a9e4f7b813
Revises: 8d41c2f7a9e3
Create Date: 2026-12-06 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c2a9e4f7b813'
down_revision = '8d41c2f7a9e3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'event_texts',
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('language', sa.String(length=16), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('description', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_texts_event_id_events'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('event_id', 'language', name=op.f('pk_event_texts')),
    )


def downgrade():
    op.drop_table('event_texts')
