"""Admin → Health: is Foyer's machinery working?"""

from __future__ import annotations

from flask import Blueprint, render_template

from app.services.dashboards import health
from app.web import require_admin

bp = Blueprint("admin_health", __name__, url_prefix="/admin/health")
require_admin(bp)


@bp.get("/")
def health_GET():
    """Database, worker heartbeat, outbox depth, Microsoft connection."""
    return render_template("admin/health.html", health=health.check())
