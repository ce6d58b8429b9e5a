"""Admin → Messages: every email and SMS with its status, filtered by event, type and status; the
rendered HTML in a sandboxed frame; retry a failed one; the ACS email quota and when the queue drains.

Personal links in a stored email (manage, join, confirmation, invitation links) are shown masked: they
are the recipient's keys, and an admin who needs one to reach its owner again uses "Retry" / resend.
"""

from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, make_response, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.extensions import db
from app.forms.messages import EmptyForm, QuotaForm
from app.logs import redact_links
from app.models import Event, Message, MessageStatus
from app.services.core.errors import DomainError
from app.services.messaging import admin, delivery_reports, dispatch, kinds
from app.web import redirect_to, require_admin, submit

logger = logging.getLogger(__name__)

bp = Blueprint("admin_messages", __name__, url_prefix="/admin/messages")
require_admin(bp)

#: The frame's own policy: no scripts, no plugins, styles inline (emails need them), images from anywhere
#: https (logos), and only Foyer's own pages may frame it.
FRAME_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
             "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox")


def _filters() -> dict:
    try:
        event_id = int(request.args.get("event") or 0)
    except ValueError:
        event_id = 0
    try:
        page = max(1, int(request.args.get("page") or 1))
    except ValueError:
        page = 1
    kind = request.args.get("kind", "")
    status = request.args.get("status", "")
    return {"event_id": event_id or None, "kind": kind if kind in kinds.KINDS else "",
            "status": status if status in MessageStatus.__members__ else "", "page": page}


def _page(quota_form: QuotaForm | None = None, status: int = 200):
    filters = _filters()
    rows, total = admin.list_messages(**filters)
    quota = dispatch.get_quota()
    quota_form = quota_form or QuotaForm(formdata=None, data={"per_minute": quota.per_minute,
                                                               "per_hour": quota.per_hour})
    events = db.session.scalars(select(Event).order_by(Event.starts_at.desc()).limit(200)).all()
    return render_template("admin/messages.html", rows=rows, total=total, filters=filters, kinds=kinds.KINDS,
                           statuses=list(MessageStatus), events=events, quota=quota, quota_form=quota_form,
                           backlog=dispatch.backlog(), eta=dispatch.eta(), page_size=admin.PAGE_SIZE,
                           webhook_url=delivery_reports.webhook_url()), status


@bp.get("")
def messages_GET():
    """Every message, newest first, with filters."""
    return _page()


@bp.post("/quota")
def quota_POST():
    """Save the ACS resource's email quota."""
    form = QuotaForm()
    if submit(form, lambda: dispatch.save_quota(form.per_minute.data, form.per_hour.data,
                                                actor=current_user._get_current_object())):
        flash(_("Email quota saved."), "success")
        return redirect_to(url_for(".messages_GET"))
    return _page(quota_form=form, status=422)


def _load(message_id: int) -> Message:
    message = db.session.get(Message, message_id)
    if message is None:
        abort(404)
    return message


@bp.get("/<int:message_id>")
def message_GET(message_id: int):
    """One message: recipient, status, attempts, errors, the text and the HTML in a sandboxed frame."""
    message = _load(message_id)
    return render_template("admin/message.html", message=message, form=EmptyForm(formdata=None),
                           kinds=kinds.KINDS, body_text=redact_links(message.body_text or ""))


@bp.get("/<int:message_id>/html")
def message_html_GET(message_id: int):
    """The rendered HTML alone, for the sandboxed frame, under its own strict policy."""
    message = _load(message_id)
    response = make_response(redact_links(message.body_html or "<p>(No HTML version.)</p>"))
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Content-Security-Policy"] = FRAME_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.post("/<int:message_id>/retry")
def message_retry_POST(message_id: int):
    """Send a failed message again."""
    message = _load(message_id)
    form = EmptyForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        admin.retry(message, actor=current_user._get_current_object())
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash(_("The message is queued again."), "success")
    return redirect_to(url_for(".message_GET", message_id=message.id))
