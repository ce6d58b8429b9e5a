"""Seats as rows (`event_seats`) instead of one counter on the event, so sign-ups for one event claim
different rows and commit side by side; a confirmed registration names its seat (`registrations.seat_id`).

Every event gets a taken seat for each seat its old counter counted (linked to its confirmed
registrations, earliest confirmed first), and an event with a capacity gets its free seats too.
`events.confirmed_count` goes: the count of taken seats replaces it. On SQLite, where a named foreign
key cannot be added in place, the registrations table is rebuilt from its own CREATE statement (keeping
its AUTOINCREMENT, rows and indexes), as the AUTOINCREMENT migration does; foreign keys are off during
migrations (migrations/env.py).

Revision ID: 5e3a7c9d1b42
Revises: 3fe1de6a9da7
Create Date: 2026-12-05 12:20:00.000000

"""
import re

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5e3a7c9d1b42'
down_revision = '3fe1de6a9da7'
branch_labels = None
depends_on = None

events = sa.table('events', sa.column('id', sa.Integer), sa.column('capacity', sa.Integer),
                  sa.column('confirmed_count', sa.Integer))
seats = sa.table('event_seats', sa.column('id', sa.Integer), sa.column('event_id', sa.Integer),
                 sa.column('taken', sa.Boolean))
registrations = sa.table('registrations', sa.column('id', sa.Integer), sa.column('event_id', sa.Integer),
                         sa.column('state', sa.String), sa.column('confirmed_at', sa.DateTime),
                         sa.column('seat_id', sa.Integer))


def upgrade():
    op.create_table('event_seats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('taken', sa.Boolean(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_event_seats_event_id_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_seats'))
    )
    op.create_index('ix_event_seats_event_taken', 'event_seats', ['event_id', 'taken', 'id'], unique=False)
    bind = op.get_bind()
    seat_id = sa.Column('seat_id', sa.Integer(), nullable=True)
    if bind.dialect.name == 'sqlite':
        _rebuild_registrations(add_seat_id=True)
    else:
        op.add_column('registrations', seat_id)
        op.create_foreign_key(op.f('fk_registrations_seat_id_event_seats'), 'registrations', 'event_seats',
                              ['seat_id'], ['id'], ondelete='SET NULL')
    op.create_index('uq_registrations_seat_id', 'registrations', ['seat_id'], unique=True)

    for event_id, capacity, counted in bind.execute(sa.select(events.c.id, events.c.capacity,
                                                              events.c.confirmed_count)).all():
        taken = counted or 0
        if taken:
            bind.execute(sa.insert(seats), [{'event_id': event_id, 'taken': True}] * taken)
            seat_ids = bind.execute(sa.select(seats.c.id).where(seats.c.event_id == event_id)
                                    .order_by(seats.c.id)).scalars().all()
            confirmed = bind.execute(sa.select(registrations.c.id).where(
                registrations.c.event_id == event_id, registrations.c.state == 'confirmed')
                .order_by(registrations.c.confirmed_at, registrations.c.id)).scalars().all()
            links = [{'reg': reg, 'seat': seat} for reg, seat in zip(confirmed, seat_ids)]
            if links:
                bind.execute(sa.update(registrations).where(registrations.c.id == sa.bindparam('reg'))
                             .values(seat_id=sa.bindparam('seat')), links)
        if capacity is not None and capacity > taken:
            bind.execute(sa.insert(seats), [{'event_id': event_id, 'taken': False}] * (capacity - taken))

    if bind.dialect.name == 'sqlite':
        bind.exec_driver_sql('ALTER TABLE events DROP COLUMN confirmed_count')
    else:
        op.drop_column('events', 'confirmed_count')


SEAT_FK = ('CONSTRAINT fk_registrations_seat_id_event_seats FOREIGN KEY(seat_id) '
           'REFERENCES event_seats (id) ON DELETE SET NULL')


def _rebuild_registrations(add_seat_id: bool) -> None:
    """Rebuild registrations from its own CREATE statement with or without seat_id and its foreign key
    (SQLite cannot add or drop a named foreign key in place); rows, indexes and AUTOINCREMENT are kept."""
    bind = op.get_bind()
    create = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'registrations'").scalar_one()
    indexes = [row[0] for row in bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'registrations' AND sql IS NOT NULL")]
    columns = [row[1] for row in bind.exec_driver_sql("PRAGMA table_info('registrations')") if row[1] != 'seat_id']
    if add_seat_id:
        new = re.sub(r'(\bid INTEGER NOT NULL[^,]*,)', r'\1 \n\tseat_id INTEGER,', create, count=1)
        new = re.sub(r'\s*\)\s*$', f', \n\t{SEAT_FK}\n)', new, count=1)
    else:
        new = create.replace(' \n\tseat_id INTEGER,', '', 1).replace(f', \n\t{SEAT_FK}', '', 1)
        assert 'seat_id' not in new, 'unexpected schema for registrations'
    assert new != create, 'unexpected schema for registrations'
    listed = ', '.join(f'"{c}"' for c in columns)
    new = re.sub(r'^CREATE TABLE "?registrations"?', 'CREATE TABLE _foyer_rebuild_registrations', new, count=1)
    bind.exec_driver_sql(new)
    bind.exec_driver_sql(f'INSERT INTO _foyer_rebuild_registrations ({listed}) SELECT {listed} FROM registrations')
    bind.exec_driver_sql('DROP TABLE registrations')
    bind.exec_driver_sql('ALTER TABLE _foyer_rebuild_registrations RENAME TO registrations')
    for statement in indexes:
        bind.exec_driver_sql(statement)


def downgrade():
    bind = op.get_bind()
    op.add_column('events', sa.Column('confirmed_count', sa.Integer(), server_default='0', nullable=False))
    taken = (sa.select(sa.func.count()).where(seats.c.event_id == events.c.id, seats.c.taken.is_(True))
             .scalar_subquery())
    bind.execute(sa.update(events).values(confirmed_count=taken))
    op.drop_index('uq_registrations_seat_id', table_name='registrations')
    if bind.dialect.name == 'sqlite':
        _rebuild_registrations(add_seat_id=False)
    else:
        op.drop_constraint(op.f('fk_registrations_seat_id_event_seats'), 'registrations', type_='foreignkey')
        op.drop_column('registrations', 'seat_id')
    op.drop_index('ix_event_seats_event_taken', table_name='event_seats')
    op.drop_table('event_seats')
