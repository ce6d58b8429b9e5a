"""Registrations keep their manage-link token encrypted, so later emails can repeat the personal link.

Revision ID: e9e26ccd994a
Revises: ab19566ad619
Create Date: 2026-11-27 00:33:13.890349

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e9e26ccd994a'
down_revision = 'ab19566ad619'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('manage_token_encrypted', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_column('manage_token_encrypted')

