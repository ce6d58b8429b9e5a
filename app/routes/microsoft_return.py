"""Microsoft's answer to a sign-in Foyer started (staff sign-in, service-account connect): honoured only
in the browser that started it (services/accounts/auth_flows.py).

Entra posts the answer cross-site (response_mode=form_post), and the SameSite=Lax session cookie does not
travel with a cross-site POST. So the first arrival, without this browser's session, only answers with a
page that posts the same fields again from Foyer's own origin (by script, or a button without
JavaScript); that second post carries the session. A post that is already the second one and still
finds no matching flow in the session is refused. Neither page writes to the session: a cookie set on
the cross-site arrival would replace the person's real session.
"""

from __future__ import annotations

import logging

from flask import render_template, request

from app.services.accounts import auth_flows
from app.web import unit_of_work

logger = logging.getLogger(__name__)

#: Marks the same-origin second post of Microsoft's answer.
RESUBMITTED = "foyer_resubmitted"
#: Fields of an authorization response worth carrying (OAuth 2.0, OIDC form_post, Entra, MSAL).
_FIELDS = ("code", "state", "error", "error_description", "error_uri", "error_codes", "session_state",
           "client_info", "id_token", "suberror")


def check_browser(purpose: str, *, retry_url: str, retry_label: str):
    """None when this browser started the flow named by the posted state; otherwise the response to send
    (a same-origin re-post, or a refusal), having changed nothing.
    """
    if auth_flows.started_here(request.form.get("state"), purpose):
        return None
    if request.form.get(RESUBMITTED) != "1":
        fields = [(name, request.form[name][:20000]) for name in _FIELDS if name in request.form]
        return render_template("auth/microsoft_return.html", fields=fields, action=request.path,
                               resubmitted=RESUBMITTED, refused=False), 200
    logger.warning("Microsoft %s answer refused: that sign-in was not started in this browser", purpose)
    return render_template("auth/microsoft_return.html", refused=True, retry_url=retry_url,
                           retry_label=retry_label), 400


def take_flow(purpose: str, *, what: str) -> auth_flows.PendingFlow | None:
    """The flow named by the posted state, used up whatever happens next; None when it expired or is unknown.

    It is taken as a unit of work of its own, so a worker writing meanwhile makes it wait its turn rather
    than fail. `what` names it in logs.
    """
    return unit_of_work(lambda: auth_flows.take(request.form.get("state"), purpose), what=what)
