"""Admin → Audit log: who did what and when, filtered by kind, person, event and dates."""

from __future__ import annotations

from flask import Blueprint, request, url_for

from app.services.core import audit
from app.web import render_page_or_fragment, require_admin, wants_fragment

bp = Blueprint("admin_audit", __name__, url_prefix="/admin/audit")
require_admin(bp)


@bp.get("/")
def audit_GET():
    """One page of the audit log, newest first; filters come from the query string (allow-listed)."""
    filters = audit.clean_filters(request.args)
    listing = audit.list_entries(filters)
    response = render_page_or_fragment("admin/audit.html", "admin/_audit.html", "audit_results", filters=filters,
                                       listing=listing, categories=audit.CATEGORIES)
    if wants_fragment():
        response.headers["HX-Push-Url"] = url_for(".audit_GET", **filters.args())
    return response
