"""Speakers: add (with a sniffed photo), edit, remove and reorder, with htmx and without."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import hx, image_bytes, submit_multipart, upload


def _names(events_in_db):
    [event] = events_in_db()
    assert [s.position for s in event.speakers] == list(range(len(event.speakers)))
    return [s.name for s in event.speakers]


def test_speakers_lifecycle(app, client, auth, make_event, events_in_db):
    me = auth.login_as_organizer()
    event = make_event(me)
    base = f"/manage/events/{event.id}/speakers"
    edit = f"/manage/events/{event.id}/edit"
    response = submit_multipart(client, base, {"new-speaker-name": "Ada Lovelace", "new-speaker-title": "Analyst",
                                               "new-speaker-photo": upload(image_bytes("GIF"), "ada.gif")})
    assert response.status_code == 303 and response.headers["Location"] == f"{edit}#speakers"
    client.submit(base, {"new-speaker-name": "Grace Hopper"})
    assert _names(events_in_db) == ["Ada Lovelace", "Grace Hopper"]
    ada, grace = events_in_db()[0].speakers
    photo = Path(app.config["UPLOAD_FOLDER"]) / ada.photo_filename
    assert ada.photo_filename.endswith(".gif") and photo.is_file()

    moved = hx(client, "POST", f"{base}/{grace.id}/move", data={"direction": "up"})
    body = moved.get_data(as_text=True)
    assert moved.status_code == 200 and body.lstrip().startswith('<section id="speakers"')
    assert "HX-Request" in moved.headers["Vary"]
    assert _names(events_in_db) == ["Grace Hopper", "Ada Lovelace"]

    prefix = f"speaker-{ada.id}-"
    bad = submit_multipart(client, f"{base}/{ada.id}", {prefix + "name": "Ada King",
                                                        prefix + "photo": upload(b"GIF89a not really", "x.gif")})
    assert bad.status_code == 422
    assert "“x.gif” was not accepted" in bad.get_data(as_text=True)
    assert _names(events_in_db) == ["Grace Hopper", "Ada Lovelace"]

    ok = client.submit(f"{base}/{ada.id}", {prefix + "name": "Ada King", prefix + "remove_photo": "y"})
    assert ok.status_code == 303
    assert events_in_db()[0].speakers[1].photo_filename is None
    assert not photo.exists()

    removed = hx(client, "POST", f"{base}/{grace.id}/delete")
    assert removed.status_code == 200 and "Grace Hopper" not in removed.get_data(as_text=True)
    assert _names(events_in_db) == ["Ada King"]


@pytest.mark.db_agnostic
def test_speaker_needs_a_name(client, auth, make_event, events_in_db):
    me = auth.login_as_organizer()
    event = make_event(me)
    response = hx(client, "POST", f"/manage/events/{event.id}/speakers",
                           data={"new-speaker-name": "  ", "new-speaker-bio": "Keep this bio"})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Give the speaker&#39;s name." in body or "Give the speaker's name." in body
    assert "Keep this bio" in body
    assert events_in_db()[0].speakers == []
