"""The REST API under /api/v1: JSON in and out, bearer API tokens, described by /api/v1/openapi.json."""

from app.routes.api import v1


def blueprints():
    return [v1.bp]
