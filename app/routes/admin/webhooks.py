"""Admin → Webhooks: register an endpoint (its signing secret shown once), read its delivery log,
re-send a delivery, or disable the endpoint.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.extensions import db
from app.forms.admin import ConfirmForm
from app.forms.integrations import WebhookEndpointForm
from app.models import WebhookDelivery, WebhookEndpoint
from app.services.integrations import webhooks
from app.web import carry_out, redirect_to, require_admin, submit

bp = Blueprint("admin_webhooks", __name__, url_prefix="/admin/webhooks")
require_admin(bp)


def _render(form: WebhookEndpointForm | None = None, *, created: webhooks.CreatedEndpoint | None = None,
            status: int = 200):
    return render_template("admin/webhooks.html", form=form or WebhookEndpointForm(formdata=None),
                           endpoints=webhooks.list_endpoints(), created=created, kinds=webhooks.KINDS), status


def _load_endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        abort(404)
    return endpoint


@bp.get("/")
def endpoints_GET():
    """The endpoints, and the form to add one."""
    return _render()


@bp.post("/")
def endpoints_POST():
    """Add an endpoint and show its signing secret, this once."""
    form = WebhookEndpointForm()
    if done := submit(form, lambda: webhooks.create_endpoint(form.url.data, form.kinds.data,
                                                             description=form.description.data, actor=current_user)):
        return _render(created=done.value, status=201)
    return _render(form, status=422)


@bp.get("/<int:endpoint_id>")
def endpoint_GET(endpoint_id: int):
    """One endpoint's delivery log, newest first."""
    endpoint = _load_endpoint(endpoint_id)
    return render_template("admin/webhook.html", endpoint=endpoint, deliveries=webhooks.recent_deliveries(endpoint),
                           kinds=webhooks.KINDS, confirm=ConfirmForm())


@bp.post("/<int:endpoint_id>/disable")
def endpoint_disable_POST(endpoint_id: int):
    """Stop sending to an endpoint."""
    endpoint = _load_endpoint(endpoint_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    carry_out(lambda: webhooks.disable_endpoint(endpoint, actor=current_user),
              done=_("The endpoint is disabled; nothing more is sent to it."))
    return redirect_to(url_for(".endpoint_GET", endpoint_id=endpoint_id))


@bp.post("/deliveries/<int:delivery_id>/resend")
def delivery_resend_POST(delivery_id: int):
    """Send a delivery again (a new delivery with the same event id)."""
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    endpoint_id = delivery.endpoint_id
    carry_out(lambda: webhooks.resend(delivery, actor=current_user), done=_("Queued to be sent again."))
    return redirect_to(url_for(".endpoint_GET", endpoint_id=endpoint_id))
