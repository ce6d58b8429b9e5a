"""Teams meeting options per event (attendees' microphone and camera, meeting chat) and the meeting's
join-by-ID settings (meeting ID and passcode).

Revision ID: 5b7e2c1d9a40
Revises: 5a7c2e9d1b43
Create Date: 2026-12-04 18:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5b7e2c1d9a40'
down_revision = '5a7c2e9d1b43'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('join_meeting_id', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('join_passcode', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('allow_attendee_mic', sa.Boolean(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('allow_attendee_camera', sa.Boolean(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('meeting_chat', sa.String(length=20), server_default='enabled', nullable=False))


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('meeting_chat')
        batch_op.drop_column('allow_attendee_camera')
        batch_op.drop_column('allow_attendee_mic')
        batch_op.drop_column('join_passcode')
        batch_op.drop_column('join_meeting_id')
