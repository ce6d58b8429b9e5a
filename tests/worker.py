"""What the tests do in place of a running `flask worker`."""

from app.models import db
from app.services.outbox import outbox


def drain(app) -> None:
    """What `flask worker` does every few seconds: perform every due outbox item."""
    with app.app_context():
        outbox.drain()
        db.session.remove()
