"""Entra tenant ids: staff users' `tid` beside their `oid`, and the service account's tenant.

Revision ID: 5a7c2e9d1b43
Revises: 3b7e9c1d2a40
Create Date: 2026-12-04 18:10:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '5a7c2e9d1b43'
down_revision = '3b7e9c1d2a40'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entra_tenant_id', sa.String(length=64), nullable=True))
    with op.batch_alter_table('microsoft_connection', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tenant_id', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('microsoft_connection', schema=None) as batch_op:
        batch_op.drop_column('tenant_id')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('entra_tenant_id')
