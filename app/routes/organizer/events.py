"""Organizer event management under /manage/events: list, create, edit, overview, publish,
unpublish, clone and cancel. Questions and speakers have their own modules beside this one.
"""

from __future__ import annotations

import logging

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    get_template_attribute,
    make_response,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import pgettext
from flask_login import current_user
from markupsafe import escape
from sqlalchemy.exc import IntegrityError
from werkzeug.routing import BuildError
from wtforms.fields.choices import SelectChoice

from app.extensions import db
from app.forms.events import CancelEventForm, EventForm, QuestionForm, SpeakerForm, event_form_class
from app.forms.insights import FollowupForm, ImportAttendanceForm, RetentionForm
from app.models import Event, EventSeries, utcnow
from app.routes.organizer.ordered import section_context
from app.services.core import links, settings
from app.services.core.errors import DomainError
from app.services.core.timezones import DEFAULT_ZONE, utc_to_local
from app.services.dashboards import insights
from app.services.events import events
from app.services.microsoft import connection
from app.services.registration import reminders
from app.web import (
    apply_domain_error,
    load_managed_event,
    redirect_to,
    render_page_or_fragment,
    require_staff,
    wants_fragment,
)

logger = logging.getLogger(__name__)

bp = Blueprint("organizer_events", __name__, url_prefix="/manage/events")

#: Where the public page may be served, by whichever blueprint provides it.
PUBLIC_EVENT_ENDPOINTS = ("attendee_events.event_GET", "public.event_GET")

require_staff(bp)


def status_filters() -> list[tuple[str, str]]:
    """The event list's filters: (status, what the link says)."""
    return [("all", _("All")), ("draft", _("Drafts")), ("published", _("Published")),
            ("cancelled", pgettext("event", "Cancelled")), ("past", _("Past"))]


@bp.app_template_filter("reminder_offset")
def _reminder_offset(minutes: int) -> str:
    return events.describe_offset(int(minutes))


# --- context builders shared with the questions and speakers modules ----------------------------------


def embed_snippet(event: Event) -> str | None:
    """The HTML an organizer pastes into another website to show this event's registration form there
    (see docs/embedding.md), or None while no public blueprint serves the embedded form.
    """
    if "public_embed.register_GET" not in current_app.view_functions:
        return None
    frame_url = links.public_url("public_embed.register_GET", slug=event.slug)
    page_url = links.public_url("public_registration.register_GET", slug=event.slug)
    script_url = links.public_url("static", filename="js/embed.js")
    return (f'<div data-foyer-register="{escape(frame_url)}">\n'
            f'  <a href="{escape(page_url)}">Register for {escape(event.title)}</a>\n'
            f"</div>\n"
            f'<script src="{escape(script_url)}" async></script>')


def public_event_url(event: Event) -> str | None:
    """The attendee-facing URL of the event, once some blueprint serves it."""
    for endpoint in PUBLIC_EVENT_ENDPOINTS:
        if endpoint in current_app.view_functions:
            try:
                return url_for(endpoint, slug=event.slug, _external=True)
            except BuildError:
                continue
    return None


def question_form(question=None, *, formdata=None) -> QuestionForm:
    """A question form, blank (for adding) or filled from a question (for editing)."""
    if question is None:
        return QuestionForm(formdata=formdata, prefix="new-question")
    data = {"kind": question.kind.value, "label": question.label, "help_text": question.help_text,
            "required": question.required, "options": "\n".join(question.options or [])}
    return QuestionForm(formdata=formdata, prefix=f"question-{question.id}", data=data)


def speaker_form(speaker=None, *, formdata=None) -> SpeakerForm:
    """A speaker form, blank (for adding) or filled from a speaker (for editing)."""
    if speaker is None:
        return SpeakerForm(formdata=formdata, prefix="new-speaker")
    data = {"name": speaker.name, "title": speaker.title, "bio": speaker.bio, "email": speaker.email}
    return SpeakerForm(formdata=formdata, prefix=f"speaker-{speaker.id}", data=data)


def questions_context(event: Event, *, add_form=None, failed: tuple[int, QuestionForm] | None = None) -> dict:
    """What the questions section needs; `failed` is (question id, its form that did not validate)."""
    return section_context(event, event.questions, question_form, add_form=add_form, failed=failed)


def speakers_context(event: Event, *, add_form=None, failed: tuple[int, SpeakerForm] | None = None) -> dict:
    """What the speakers section needs; `failed` is (speaker id, its form that did not validate)."""
    return section_context(event, event.speakers, speaker_form, add_form=add_form, failed=failed)


def _setup_sharing(form: EventForm, event: Event | None) -> bool:
    """Offer the co-organizer picker to the owner and admins only; True when offered."""
    if "co_organizers" not in form:
        return False
    if event is not None and not events.can_share(current_user, event):
        del form.co_organizers
        return False
    users = events.shareable_users(event, owner=current_user)
    form.co_organizers.choices = [SelectChoice(u.id, f"{u.name} ({u.email})" if u.name else u.email) for u in users]
    return True


def _event_form(**kwargs) -> EventForm:
    """The event form, with a title and description for each language offered besides the default."""
    return event_form_class(settings.get_languages().others)(**kwargs)


def _initial_data(event: Event) -> dict:
    """The event's values as the form shows them (times as wall-clock time in its zone)."""
    presets = set(events.REMINDER_PRESETS)
    offsets = list(event.reminder_offsets or [])
    return {
        "title": event.title, "slug": event.slug, "description": event.description, "timezone": event.timezone,
        "notify_attendees": True,
        "starts_at": utc_to_local(event.starts_at, event.timezone),
        "ends_at": utc_to_local(event.ends_at, event.timezone),
        "capacity": "" if event.capacity is None else str(event.capacity),
        "registration_opens_at": utc_to_local(event.registration_opens_at, event.timezone),
        "registration_closes_at": utc_to_local(event.registration_closes_at, event.timezone),
        "approval_required": event.approval_required, "waitlist_enabled": event.waitlist_enabled,
        "who_can_register": event.who_can_register, "require_email_verification": event.require_email_verification,
        "attendee_lobby": event.attendee_lobby,
        "allow_attendee_mic": event.allow_attendee_mic, "allow_attendee_camera": event.allow_attendee_camera,
        "meeting_chat": event.meeting_chat,
        "call_experience": event.call_experience, "join_opens_minutes": event.join_opens_minutes,
        "join_grace_minutes": event.join_grace_minutes, "recording_url": event.recording_url,
        "reminders": [o for o in offsets if o in presets],
        "reminder_custom": ", ".join(events.describe_offset(o) for o in offsets if o not in presets),
        "banner_alt": event.banner_alt,
        "tags": ", ".join(event.tags),
        "co_organizers": [u.id for u in event.co_organizers],
        **{f"{name}_{code}": getattr(text, name) for code, text in event.texts.items()
           for name in ("title", "description")},
    }


def edit_page(event: Event, *, form: EventForm | None = None, status: int = 200, section: str | None = None,
              questions: dict | None = None, speakers: dict | None = None) -> Response:
    """The edit page, or for htmx only its `section` ("questions" or "speakers"), always with Vary."""
    sections = {"questions": questions or questions_context(event), "speakers": speakers or speakers_context(event)}
    if section is not None and wants_fragment():
        macro = get_template_attribute(f"organizer/_{section}.html", f"{section}_section")
        response = make_response(macro(**sections[section]), status)
    else:
        if form is None:
            form = _event_form(formdata=None, data=_initial_data(event))
        can_share = _setup_sharing(form, event)
        body = render_template("organizer/event_form.html", event=event, form=form, can_share=can_share,
                               **sections)
        response = make_response(body, status)
    response.vary.add("HX-Request")
    return response


# --- list ------------------------------------------------------------------------------------------


@bp.get("/")
def events_GET():
    """The events this user may manage, filtered by status."""
    status = request.args.get("status", "all")
    if status not in events.STATUS_FILTERS:
        status = "all"
    rows = events.list_managed_events(current_user, status)
    setup = connection.setup_prompt() if current_user.is_admin else None
    return render_page_or_fragment("organizer/events.html", "organizer/_events.html", "event_list",
                                   events=rows, current=status, filters=status_filters(), microsoft_setup=setup)


# --- create ----------------------------------------------------------------------------------------


@bp.get("/new")
def event_new_GET():
    """The form for a new event."""
    zone = events.last_used_timezone(current_user)
    form = _event_form(formdata=None, data={"timezone": zone, "waitlist_enabled": True,
                                            "reminders": list(events.normalize_reminder_offsets([1440, 60]))})
    # The organizer's own zone comes first: foyer.js preselects the device's zone and says so in the note;
    # without JavaScript the note names the zone chosen here, so it is never reused silently.
    form.timezone.render_kw = {"data-default-browser-zone": "prefer"}
    if zone != DEFAULT_ZONE:
        zone_note = _("Start and end times below are in this zone. Preselected: %(zone)s (the zone of your last "
                      "event).", zone=zone)
    else:
        zone_note = _("Start and end times below are in this zone. Preselected: %(zone)s (no zone chosen yet).",
                      zone=zone)
    _setup_sharing(form, None)
    return render_template("organizer/event_form.html", event=None, form=form, can_share=True, zone_note=zone_note)


@bp.post("/new")
def event_new_POST():
    """Create a draft event and continue on its edit page (questions, speakers)."""
    form = _event_form()
    _setup_sharing(form, None)
    if form.validate_on_submit():
        try:
            event = events.create_event(form.to_data(), actor=current_user)
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            if not _commit(form):
                return render_template("organizer/event_form.html", event=None, form=form, can_share=True), 422
            flash(_("Event created as a draft. Add registration questions and speakers below, then publish it."),
                  "success")
            return redirect_to(url_for(".event_edit_GET", event_id=event.id))
    _mention_lost_upload(form)
    return render_template("organizer/event_form.html", event=None, form=form, can_share=True), 422


def _commit(form: EventForm) -> bool:
    """Commit; a slug taken by a simultaneous request becomes a field error instead of a crash."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        logger.info("Slug %r was taken while saving", form.slug.data)
        form.slug.errors = [_("Another event took this address a moment ago. Please choose another.")]
        return False
    return True


def _mention_lost_upload(form: EventForm) -> None:
    """Browsers cannot keep a chosen file across a failed submission: say so."""
    if form.banner_image is not None and not form.banner.errors:
        form.banner.errors = [_("The image was fine, but please choose it again: files are not kept when "
                                "other fields need correcting.")]


# --- overview and edit ---------------------------------------------------------------------------


def event_page(event: Event, *, status: int = 200, **forms) -> Response:
    """The overview with its dashboard; `forms` replaces a dashboard form that did not validate."""
    forms.setdefault("followup_form", FollowupForm(formdata=None, data={
        "enabled": event.followup_enabled, "recording_url": event.followup_recording_url}))
    forms.setdefault("retention_form", RetentionForm(formdata=None, data={"retention_days": event.retention_days}))
    forms.setdefault("import_form", ImportAttendanceForm(formdata=None))
    from app.routes.organizer.after_event import page_context  # noqa: PLC0415 — after_event answers with this page: the two import each other

    after_forms = {name: forms.pop(name) for name in ("survey_form",) if name in forms}
    plans = reminders.plan(event) if event.is_published and event.starts_at > utcnow() else []
    body = render_template("organizer/event.html", **page_context(event, **after_forms), event=event,
                           public_url=public_event_url(event), embed_snippet=embed_snippet(event),
                           embed_origins=settings.embed_origins(),
                           can_share=events.can_share(current_user, event), user=current_user,
                           dashboard=insights.event_dashboard(event), now=utcnow(),
                           reminder_plans=[p for p in plans if p.due_at > utcnow()],
                           event_series=db.session.get(EventSeries, event.series_id) if event.series_id else None,
                           **forms)
    return make_response(body, status)


@bp.get("/<int:event_id>")
def event_GET(event_id: int):
    """An overview of one event: how it is going (dashboard), status, times, links, actions."""
    event = load_managed_event(event_id)
    return event_page(event)


@bp.get("/<int:event_id>/edit")
def event_edit_GET(event_id: int):
    """The edit page: details, registration questions and speakers."""
    event = load_managed_event(event_id)
    return edit_page(event)


@bp.post("/<int:event_id>/edit")
def event_edit_POST(event_id: int):
    """Save the event's details."""
    event = load_managed_event(event_id)
    form = _event_form()
    form.saved_starts_at = event.starts_at
    _setup_sharing(form, event)
    if form.validate_on_submit():
        try:
            events.update_event(event, form.to_data(), actor=current_user)
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            if _commit(form):
                flash(_("Changes saved."), "success")
                return redirect_to(url_for(".event_GET", event_id=event_id))
    db.session.rollback()
    _mention_lost_upload(form)
    return edit_page(load_managed_event(event_id), form=form, status=422)


# --- state changes ---------------------------------------------------------------------------------


def _state_change(event_id: int, verb, done: str):
    event = load_managed_event(event_id)
    try:
        verb(event, actor=current_user)
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash(done, "success")
    return redirect_to(url_for(".event_GET", event_id=event_id))


@bp.post("/<int:event_id>/publish")
def event_publish_POST(event_id: int):
    """Publish the event."""
    return _state_change(event_id, events.publish_event, _("Published. The event page is now public."))


@bp.post("/<int:event_id>/unpublish")
def event_unpublish_POST(event_id: int):
    """Take the event back to draft."""
    return _state_change(event_id, events.unpublish_event, _("Unpublished. The event is a draft again."))


@bp.post("/<int:event_id>/clone")
def event_clone_POST(event_id: int):
    """Copy the event as a new draft one week later and open the copy."""
    event = load_managed_event(event_id)
    clone = events.clone_event(event, actor=current_user)
    db.session.commit()
    flash(_("This is a copy of “%(title)s”, moved one week later. Check the dates and title, then publish it.",
            title=event.title), "success")
    return redirect_to(url_for(".event_edit_GET", event_id=clone.id))


@bp.get("/<int:event_id>/cancel")
def event_cancel_GET(event_id: int):
    """Ask for confirmation (and an optional message) before cancelling."""
    event = load_managed_event(event_id)
    if event.is_cancelled:
        flash(_("This event is already cancelled."), "info")
        return redirect_to(url_for(".event_GET", event_id=event.id))
    return render_template("organizer/event_cancel.html", event=event, form=CancelEventForm())


@bp.post("/<int:event_id>/cancel")
def event_cancel_POST(event_id: int):
    """Cancel the event for good."""
    event = load_managed_event(event_id)
    form = CancelEventForm()
    if form.validate_on_submit():
        try:
            events.cancel_event(event, actor=current_user, reason=form.reason.data or "")
        except DomainError as exc:
            apply_domain_error(form, exc)
        else:
            db.session.commit()
            flash(_("The event is cancelled. Its public page now says so."), "success")
            return redirect_to(url_for(".event_GET", event_id=event.id))
    return render_template("organizer/event_cancel.html", event=event, form=form), 422
