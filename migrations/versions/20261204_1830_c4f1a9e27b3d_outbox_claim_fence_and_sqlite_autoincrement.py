"""Outbox claims carry a version (a worker that lost its claim can neither send nor settle), and on
SQLite registrations and messages never reuse the id of a deleted newest row (AUTOINCREMENT).

SQLite can only add AUTOINCREMENT by rebuilding the table (its documented twelve-step procedure:
foreign keys are off during migrations, see migrations/env.py). PostgreSQL sequences never reuse
ids, so there this part does nothing.

Revision ID: c4f1a9e27b3d
Revises: 5b7e2c1d9a40
Create Date: 2026-12-04 18:30:00.000000

"""
import re

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4f1a9e27b3d'
down_revision = '5b7e2c1d9a40'
branch_labels = None
depends_on = None

TABLES = ('registrations', 'messages')


def _rebuild(table: str, autoincrement: bool) -> None:
    """Recreate `table` from its own CREATE statement with the primary key switched, rows and indexes kept."""
    bind = op.get_bind()
    create = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).scalar_one()
    indexes = [row[0] for row in bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,))]
    pk = f'pk_{table}'
    if autoincrement:
        new = re.sub(r',\s*CONSTRAINT "?%s"? PRIMARY KEY \("?id"?\)' % pk, '', create, count=1)
        new = re.sub(r'\b"?id"? INTEGER NOT NULL,', f'id INTEGER NOT NULL CONSTRAINT {pk} PRIMARY KEY AUTOINCREMENT,',
                     new, count=1)
    else:
        new = re.sub(r'\bid INTEGER NOT NULL CONSTRAINT "?%s"? PRIMARY KEY AUTOINCREMENT,' % pk,
                     'id INTEGER NOT NULL,', create, count=1)
        new = re.sub(r'(\n\)|\))\s*$', f', \n\tCONSTRAINT {pk} PRIMARY KEY (id)\n)', new, count=1)
    assert new != create, f'unexpected schema for {table}'
    temporary = f'_foyer_rebuild_{table}'
    new = re.sub(r'^CREATE TABLE "?%s"?' % table, f'CREATE TABLE {temporary}', new, count=1)
    bind.exec_driver_sql(new)
    bind.exec_driver_sql(f'INSERT INTO {temporary} SELECT * FROM {table}')
    bind.exec_driver_sql(f'DROP TABLE {table}')
    bind.exec_driver_sql(f'ALTER TABLE {temporary} RENAME TO {table}')
    for statement in indexes:
        bind.exec_driver_sql(statement)


def upgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim_version', sa.Integer(), server_default='0', nullable=False))
    if op.get_bind().dialect.name == 'sqlite':
        for table in TABLES:
            _rebuild(table, autoincrement=True)


def downgrade():
    if op.get_bind().dialect.name == 'sqlite':
        for table in TABLES:
            _rebuild(table, autoincrement=False)
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('claim_version')
