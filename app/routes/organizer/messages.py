"""Organizer messages: write to a segment of an event's registrants (preview, send, watch progress),
see the event's messages and failures, and override the wording of Foyer's emails per event.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, get_template_attribute, make_response, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from app.extensions import db
from app.forms.messages import ComposeForm, OverrideForm
from app.models import DELIVERED_STATUSES, Message, MessageStatus
from app.services.broadcast import fanout
from app.services.core.errors import DomainError
from app.services.core.markdown import render_markdown
from app.services.events import events
from app.services.messaging import admin, delivery_reports, dispatch, kinds, rendering
from app.web import apply_domain_error, load_managed_event, redirect_to, require_staff, submit, wants_fragment

logger = logging.getLogger(__name__)

bp = Blueprint("organizer_messages", __name__, url_prefix="/manage/events")

require_staff(bp)


def _segments(event) -> list[tuple[str, str, int]]:
    return [(key, fanout.SEGMENTS[key][0], fanout.segment_count(event, key))
            for key in fanout.available_segments(event)]


def _compose_form(event, formdata=True) -> ComposeForm:
    form = ComposeForm() if formdata else ComposeForm(formdata=None)
    form.segment.choices = [(key, f"{_(label)} ({count})") for key, label, count in _segments(event)]
    return form


def _batches(event) -> list[dict]:
    """The event's latest organizer messages: the subject as written (as composed while none is sent yet)."""
    rows = db.session.execute(
        select(Message.batch, func.max(Message.subject), func.min(Message.created_at), func.count(Message.id))
        .where(Message.event_id == event.id, Message.kind == "organizer", Message.batch.is_not(None))
        .group_by(Message.batch).order_by(func.min(Message.created_at).desc()).limit(20)
    ).all()
    composed = fanout.composed_subjects(event) if any(not s for _, s, _, _ in rows) else {}
    return [{"batch": b, "subject": s or composed.get(b, ""), "created_at": c, "count": n} for b, s, c, n in rows]


def _failed(event) -> list[Message]:
    """Messages that did not reach their recipient: failed sends, and deliveries ACS reports as not made."""
    rows = db.session.scalars(select(Message).where(
        Message.event_id == event.id,
        (Message.status == MessageStatus.failed) | (Message.delivery.not_in(["", *DELIVERED_STATUSES])))
        .order_by(Message.id.desc()).limit(50))
    return list(rows)


def _page(event, form: ComposeForm, *, preview=None, status: int = 200):
    return render_template("organizer/messages.html", event=event, form=form, preview=preview,
                           batches=_batches(event), failed=_failed(event), segments=_segments(event),
                           kinds=kinds.KINDS, overridable=kinds.OVERRIDABLE), status


@bp.get("/<int:event_id>/messages")
def messages_GET(event_id: int):
    """Compose a message; earlier messages and any failed emails of this event."""
    event = load_managed_event(event_id)
    return _page(event, _compose_form(event, formdata=False))


def _preview(event, composition):
    rendered = fanout.render_organizer_message(event, composition, name="Ada",
                                                 manage_link=_("(each person's own link)"))
    count = fanout.segment_count(event, composition.segment)
    return {"subject": rendered.subject, "text": rendered.text, "intro": render_markdown(composition.body),
            "count": count, "eta": dispatch.eta(count)}


@bp.post("/<int:event_id>/messages")
def messages_POST(event_id: int):
    """Preview (button "preview") or send the message."""
    event = load_managed_event(event_id)
    form = _compose_form(event)
    if not form.validate_on_submit():
        return _page(event, form, status=422)
    try:
        composition = fanout.check_composition(event, form.segment.data, form.subject.data, form.body.data)
    except DomainError as exc:
        apply_domain_error(form, exc)
        return _page(event, form, status=422)
    if request.form.get("action") != "send":
        return _page(event, form, preview=_preview(event, composition))
    batch = fanout.send_organizer_message(event, composition, actor=current_user._get_current_object())
    db.session.commit()
    flash(_("Your message is on its way."), "success")
    return redirect_to(url_for(".message_batch_GET", event_id=event.id, batch=batch))


def _progress(event, batch: str) -> dict:
    counts = admin.batch_progress(batch)
    total = sum(counts.values())
    preparing = fanout.fanout_pending(batch)
    expected = fanout.fanout_expected(batch)
    if total == 0 and expected is None:
        abort(404)
    waiting = counts["queued"] + counts["sending"]
    return {"event": event, "batch": batch, "counts": counts, "total": total, "preparing": preparing,
            "deliveries": delivery_reports.batch_deliveries(batch),
            "expected": expected if preparing else total, "done": not preparing and waiting == 0,
            "eta": dispatch.eta() if waiting or preparing else None}


@bp.get("/<int:event_id>/messages/<batch>")
def message_batch_GET(event_id: int, batch: str):
    """Progress of one message to a segment (htmx polls the fragment until every email is out)."""
    event = load_managed_event(event_id)
    if not batch.startswith(f"organizer:{event.id}:"):
        abort(404)
    ctx = _progress(event, batch)
    if wants_fragment():
        body = get_template_attribute("organizer/_messages.html", "progress")(**ctx)
        response = make_response(body)
        response.vary.add("HX-Request")
        return response
    response = make_response(render_template("organizer/message_batch.html", **ctx))
    response.vary.add("HX-Request")
    return response


# --- wording overrides ---------------------------------------------------------------------------------


def _load_kind(kind: str) -> str:
    if kind not in kinds.OVERRIDABLE:
        abort(404)
    return kind


def _override_form(event, kind: str) -> OverrideForm:
    override = rendering.get_override(event, kind)
    return OverrideForm(formdata=None, data={"subject": override.subject if override else "",
                                             "intro": override.intro if override else ""})


def _sample(event, kind: str, subject: str, intro: str) -> rendering.Rendered:
    """The email with the wording being typed; an empty subject is Foyer's own, in the page's language (never
    the saved override: "" is not None).
    """
    return rendering.render(kind, event=event, name="Ada", zone=event.timezone,
                            manage_link=_("(the person's own link)"), extra=_("(the organizer's note)"), position=3,
                            subject=subject, intro=intro or None)


@bp.get("/<int:event_id>/emails/<kind>")
def email_override_GET(event_id: int, kind: str):
    """Edit the subject and opening paragraph of one email type for this event, with a live preview."""
    event = load_managed_event(event_id)
    kind = _load_kind(kind)
    form = _override_form(event, kind)
    sample = _sample(event, kind, form.subject.data or "", form.intro.data or "")
    return render_template("organizer/email_override.html", event=event, kind=kind, spec=kinds.KINDS[kind],
                           form=form, sample=sample)


@bp.post("/<int:event_id>/emails/<kind>/preview")
def email_override_preview_POST(event_id: int, kind: str):
    """The preview fragment for the text being typed (htmx, nothing saved)."""
    event = load_managed_event(event_id)
    kind = _load_kind(kind)
    form = OverrideForm()
    if not form.validate():
        sample, status = None, 422
    else:
        sample, status = _sample(event, kind, form.subject.data or "", form.intro.data or ""), 200
    body = get_template_attribute("organizer/_messages.html", "override_preview")(sample=sample, form=form)
    return make_response(body, status)


@bp.post("/<int:event_id>/emails/<kind>")
def email_override_POST(event_id: int, kind: str):
    """Save (or, with both fields empty, remove) the override."""
    event = load_managed_event(event_id)
    kind = _load_kind(kind)
    form = OverrideForm()
    if submit(form, lambda: events.save_email_wording(event, kind, form.subject.data or "", form.intro.data or "",
                                                      actor=current_user._get_current_object())):
        flash(_("The “%(kind)s” email of this event is saved.", kind=_(kinds.KINDS[kind].label)), "success")
        return redirect_to(url_for(".messages_GET", event_id=event.id) + "#wording")
    sample = _sample(event, kind, form.subject.data or "", form.intro.data or "") if not form.errors else None
    return render_template("organizer/email_override.html", event=event, kind=kind, spec=kinds.KINDS[kind],
                           form=form, sample=sample), 422

