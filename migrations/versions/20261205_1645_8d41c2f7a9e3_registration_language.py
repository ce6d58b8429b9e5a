"""The language each registration was made in (its emails are written in it).

A nullable column added and dropped in place on both databases: on SQLite a batch rebuild of the
registrations table would lose its AUTOINCREMENT (SQLite has had DROP COLUMN since 3.35).

Revision ID: 8d41c2f7a9e3
Revises: b7d2e5a91c30
Create Date: 2026-12-05 16:15:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '8d41c2f7a9e3'
down_revision = 'b7d2e5a91c30'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('registrations', sa.Column('language', sa.String(length=16), nullable=True))


def downgrade():
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE registrations DROP COLUMN language')
    else:
        op.drop_column('registrations', 'language')
