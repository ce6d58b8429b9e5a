"""Emails to staff, about the installation rather than an event: the admin alert when the Microsoft
connection breaks, invitations and password resets (their one-time link kept out of the log), and the
admin's test email.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from markupsafe import Markup

from app.models import Message, MessageChannel, MessageStatus, User, utcnow
from app.services.core import audit, links
from app.services.core.errors import NotAllowed
from app.services.core.settings import get_branding, get_email_settings
from app.services.messaging.kinds import KINDS, RECIPIENT_NAME_MAX, clean_header, new_operation_id
from app.services.messaging.queueing import insert_message, queue_email
from app.services.messaging.rendering import SECRET_LINK, fill, render_staff
from app.services.outbox import outbox


def on_microsoft_connection_broken(connection: Any, *, admins: list[User], reason: str, key: str) -> None:
    """Receiver of `signals.microsoft_connection_broken`: one alert email per active admin."""
    for admin in admins:
        queue_admin_alert(admin, reason=reason, key=key)


def queue_admin_alert(admin: User, *, reason: str, key: str) -> Message | None:
    """Queue the "re-connect Microsoft 365" alert to one admin (`key` names the breakage)."""
    rendered = render_staff("admin_alert", name=admin.name, extra=reason,
                            link=links.public_url("admin_microsoft.connection_GET"))
    return queue_email("admin_alert", event=None, to=admin.email, name=admin.name, rendered=rendered,
                       dedupe_key=f"admin-alert:{key}:{admin.id}")


def queue_staff_link(kind: str, user: User, *, link: str, expires: datetime, key: str) -> Message | None:
    """Queue a staff invitation or password-reset email; the one-time link never enters the log."""
    rendered = render_staff(kind, name=user.name, link=SECRET_LINK, expires=expires,
                            role=_("an admin") if user.is_admin else _("an organizer"))
    return queue_email(kind, event=None, to=user.email, name=user.name, rendered=rendered,
                       dedupe_key=f"{kind}:{user.id}:{key}", secret_link=link,
                       deadline=utcnow() + timedelta(minutes=5))


def queue_test_email(*, actor: User, now: datetime | None = None) -> Message | None:
    """Queue a test email to the acting admin through the pipeline; None when one was queued this minute."""
    if not actor.is_admin:
        raise NotAllowed(_("Only admins can send a test email."))
    now = now or utcnow()
    branding, sender = get_branding(), get_email_settings()
    subject = clean_header(fill(_(KINDS["test"].subject), {"title": branding.site_name}))
    intro = _("This is a test email from %(site)s. It went through the same queue, quota and Azure Communication "
              "Services sender as every other email, so if you are reading it, email works.", site=branding.site_name)
    context = {"branding": branding, "subject": subject, "name": clean_header(actor.name or ""),
               "logo_url": links.upload_url(branding.logo_filename), "intro_html": Markup("<p>{}</p>").format(intro),
               "sender_name": sender.sender_name, "reply_to": sender.reply_to,
               "sent_from": current_app.config.get("ACS_SENDER_ADDRESS", "")}
    env = current_app.jinja_env
    message = insert_message(Message(
        dedupe_key=f"test:{actor.id}:{now:%Y%m%d%H%M}", channel=MessageChannel.email, kind="test",
        status=MessageStatus.queued, event_id=None, recipient=actor.email,
        recipient_name=clean_header(context["name"])[:RECIPIENT_NAME_MAX],
        subject=subject, body_text=env.get_template("emails/test.txt").render(**context).strip() + "\n",
        body_html=env.get_template("emails/test.html").render(**context), attachments=[],
        deadline=now + timedelta(minutes=10), operation_id=new_operation_id(), created_at=now,
    ))
    if message is None:
        return None
    outbox.enqueue("message.send", {"message_id": message.id, "attachments": []},
                   dedupe_key=f"message:{message.dedupe_key}")

    audit.record("message.test_email", actor=actor, target=("message", message.id),
                 summary=f"Sent a test email to {actor.email}")
    return message
