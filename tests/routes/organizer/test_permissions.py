"""Every organizer route: anonymous -> sign-in, another organizer's event -> 404 (never 403),
owners, co-organizers and admins -> allowed."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import EventOrganizer, Role, Speaker

EVENT_ROUTES = [  # destructive ones last, so that a signed-in sweep reaches every route
    ("GET", "/manage/events/{e}"),
    ("GET", "/manage/events/{e}/edit"),
    ("POST", "/manage/events/{e}/edit"),
    ("POST", "/manage/events/{e}/publish"),
    ("POST", "/manage/events/{e}/unpublish"),
    ("POST", "/manage/events/{e}/clone"),
    ("GET", "/manage/events/{e}/questions"),
    ("POST", "/manage/events/{e}/questions"),
    ("POST", "/manage/events/{e}/questions/{q}"),
    ("POST", "/manage/events/{e}/questions/{q}/move"),
    ("GET", "/manage/events/{e}/speakers"),
    ("POST", "/manage/events/{e}/speakers"),
    ("POST", "/manage/events/{e}/speakers/{s}"),
    ("POST", "/manage/events/{e}/speakers/{s}/move"),
    ("POST", "/manage/events/{e}/questions/{q}/delete"),
    ("POST", "/manage/events/{e}/speakers/{s}/delete"),
    ("GET", "/manage/events/{e}/cancel"),
    ("POST", "/manage/events/{e}/cancel"),
]
ALL_ROUTES = [("GET", "/manage/events/"), ("GET", "/manage/events/new"), ("POST", "/manage/events/new"),
              *EVENT_ROUTES]


@pytest.fixture
def owned_event(app, make_user, make_event):
    """An event of owner@example.org with one question and one speaker: (event, question id, speaker id)."""
    owner = make_user("owner@example.org")
    event = make_event(owner, questions=1)
    with app.app_context():
        speaker = Speaker(event_id=event.id, name="Ada", position=0)
        db.session.add(speaker)
        db.session.commit()
        from app.models import Question
        question_id = db.session.query(Question.id).filter_by(event_id=event.id).scalar()
        return event, question_id, speaker.id


def _url(template, owned):
    event, question_id, speaker_id = owned
    return template.format(e=event.id, q=question_id, s=speaker_id)


def _request(client, method, url):
    if method == "GET":
        return client.get(url)
    return client.post(url, data={"csrf_token": client.csrf_token("/account/password")})


@pytest.mark.db_agnostic
@pytest.mark.parametrize(("method", "template"), ALL_ROUTES)
def test_anonymous_is_sent_to_sign_in(client, owned_event, method, template):
    url = _url(template, owned_event)
    data = {"csrf_token": client.csrf_token("/login")} if method == "POST" else None
    response = client.open(url, method=method, data=data)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.db_agnostic
def test_another_organizers_event_is_not_found_on_every_route(client, auth, owned_event, events_in_db):
    auth.login_as_organizer("stranger@example.org")
    assert "Community call" not in client.get("/manage/events/").get_data(as_text=True)
    for method, template in EVENT_ROUTES:
        response = _request(client, method, _url(template, owned_event))
        assert response.status_code == 404, (method, template)
    [event] = events_in_db()
    assert (len(event.questions), len(event.speakers), event.status.value) == (1, 1, "draft")


@pytest.mark.parametrize("who", ["owner", "co-organizer", "admin"])
def test_owner_co_organizer_and_admin_reach_every_route(app, client, auth, make_user, owned_event, who):
    event = owned_event[0]
    if who == "owner":
        auth.login("owner@example.org")
    elif who == "admin":
        auth.login_as(Role.admin)
    else:
        helper = auth.login_as_organizer("helper@example.org")
        with app.app_context():
            db.session.add(EventOrganizer(event_id=event.id, user_id=helper.id))
            db.session.commit()
    assert event.title in client.get("/manage/events/").get_data(as_text=True)
    for method, template in ALL_ROUTES:
        response = _request(client, method, _url(template, owned_event))
        assert response.status_code in (200, 302, 303, 422), (who, method, template, response.status_code)
