"""Helpers for the organizer page tests: a valid event form, images made on the fly."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from app.extensions import db
from app.models import Event


def event_form(**overrides) -> dict:
    """A complete, valid new-event submission; keyword overrides replace or add fields."""
    data = {
        "title": "Spring meetup",
        "slug": "",
        "description": "Come **along**.",
        "timezone": "Europe/Berlin",
        "starts_at": "2031-05-20T18:00",
        "ends_at": "2031-05-20T20:00",
        "capacity": "50",
        "registration_opens_at": "",
        "registration_closes_at": "",
        "waitlist_enabled": "y",
        "reminders": ["1440", "60"],
        "reminder_custom": "",
        "banner_alt": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def image_bytes(fmt: str = "PNG", size=(40, 20), *, exif: bool = False) -> bytes:
    """A small real image in the given format."""
    out = io.BytesIO()
    image = Image.new("RGB", size, (200, 30, 30))
    kwargs = {}
    if exif:
        info = Image.Exif()
        info[0x010F] = "SecretCameraMaker"  # Make
        kwargs["exif"] = info.tobytes()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def upload(data: bytes, name: str = "banner.png") -> FileStorage:
    return FileStorage(io.BytesIO(data), filename=name, content_type="image/png")


def submit_multipart(client, url: str, data: dict):
    """Like `client.submit`, but encode the multipart body in memory (large uploads included), so no
    temporary file is left open by the test client."""
    payload = {"csrf_token": client.form_csrf_token(), **data}
    boundary, body = encode_multipart(payload)
    return client.post(url, data=body, content_type=f"multipart/form-data; boundary={boundary}")


@pytest.fixture
def events_in_db(app):
    """Read events straight from the database: `events_in_db()` -> list of Event (detached)."""

    def _read(**filters):
        with app.app_context():
            rows = db.session.query(Event).filter_by(**filters).order_by(Event.id).all()
            for row in rows:
                _ = (row.questions, row.speakers, row.co_organizers, row.owner)
            db.session.expunge_all()
            return rows

    return _read


def hx(client, method: str, url: str, **kwargs):
    """An htmx request from a signed-in page (the CSRF header comes from <body hx-headers>)."""
    return client.htmx(method, url, **kwargs)
