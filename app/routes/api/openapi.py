"""The OpenAPI 3.1 description of /api/v1, served at /api/v1/openapi.json.

Kept true by tests/routes/api: every API response the tests receive is validated against it.
"""

from __future__ import annotations

from typing import Any

from app.services.integrations.webhooks import KINDS

DT = {"type": ["string", "null"], "format": "date-time"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _errors(*codes: int) -> dict[str, Any]:
    described = {400: "Malformed request or parameter", 401: "Missing, unknown or revoked API token",
                 403: "The token's scope does not allow this call", 404: "No such object",
                 409: "Refused by the current state (closed, full)", 413: "Request body too large",
                 422: "Invalid field (see `error.field`)", 429: "Rate limit reached",
                 503: "Database busy; try again"}
    return {str(code): _json("Error", described[code]) for code in codes}


_LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}}
_OFFSET = {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}}
_EVENT_ID = {"name": "event_id", "in": "path", "required": True, "schema": {"type": "integer"}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"], "additionalProperties": False,
        "properties": {"error": {
            "type": "object", "required": ["code", "message", "field"], "additionalProperties": False,
            "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                           "field": {"type": ["string", "null"]}}}},
    },
    "Question": {
        "type": "object", "required": ["id", "kind", "label", "required", "options"], "additionalProperties": False,
        "properties": {
            "id": {"type": "integer"},
            "kind": {"enum": ["short_text", "long_text", "single_choice", "multiple_choice", "checkbox"]},
            "label": {"type": "string"}, "required": {"type": "boolean"},
            "options": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Session": {
        "type": "object", "required": ["id", "name", "starts_at", "ends_at"], "additionalProperties": False,
        "properties": {
            "id": {"type": "integer"}, "name": {"type": "string", "description": "May be empty"},
            "starts_at": {"type": "string", "format": "date-time"},
            "ends_at": {"type": "string", "format": "date-time"},
        },
    },
    "Event": {
        "type": "object", "additionalProperties": False,
        "required": ["id", "slug", "title", "description", "status", "url", "timezone", "starts_at", "ends_at",
                     "registration_opens_at", "registration_closes_at", "capacity", "confirmed_count", "seats_left",
                     "waitlist_enabled", "approval_required", "questions", "sessions", "series_id", "published_at",
                     "cancelled_at", "updated_at"],
        "properties": {
            "id": {"type": "integer"}, "slug": {"type": "string"}, "title": {"type": "string"},
            "description": {"type": "string", "description": "Markdown as the organizer wrote it"},
            "status": {"enum": ["draft", "published", "cancelled"]},
            "url": {"type": "string", "format": "uri"},
            "timezone": {"type": "string", "description": "IANA zone the event was scheduled in"},
            "starts_at": {"type": "string", "format": "date-time"},
            "ends_at": {"type": "string", "format": "date-time"},
            "registration_opens_at": DT, "registration_closes_at": DT,
            "capacity": {"type": ["integer", "null"], "description": "null: unlimited"},
            "confirmed_count": {"type": "integer"},
            "seats_left": {"type": ["integer", "null"], "description": "null: unlimited"},
            "waitlist_enabled": {"type": "boolean"}, "approval_required": {"type": "boolean"},
            "questions": {"type": "array", "items": _ref("Question")},
            "sessions": {"type": "array", "items": _ref("Session"),
                         "description": "A course's sessions (one registration covers them all); empty otherwise"},
            "series_id": {"type": ["integer", "null"],
                          "description": "The recurring series this event is one date of (each date has its own "
                                         "registrations)"},
            "published_at": DT, "cancelled_at": DT, "updated_at": DT,
        },
    },
    "Answer": {
        "type": "object", "required": ["question_id", "label", "value"], "additionalProperties": False,
        "properties": {
            "question_id": {"type": ["integer", "null"], "description": "null once the question was deleted"},
            "label": {"type": "string"},
            "value": {"oneOf": [{"type": "string"}, {"type": "boolean"},
                                {"type": "array", "items": {"type": "string"}}]},
        },
    },
    "Registration": {
        "type": "object", "additionalProperties": False,
        "required": ["id", "event_id", "state", "email", "first_name", "last_name", "timezone", "answers",
                     "attended", "created_at", "confirmed_at", "cancelled_at"],
        "properties": {
            "id": {"type": "integer"}, "event_id": {"type": "integer"},
            "state": {"enum": ["unverified", "pending", "confirmed", "waitlisted", "denied", "cancelled"]},
            "email": {"type": "string", "format": "email"},
            "first_name": {"type": "string"}, "last_name": {"type": "string"}, "timezone": {"type": "string"},
            "answers": {"type": "array", "items": _ref("Answer")},
            "attended": {"type": ["boolean", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
            "confirmed_at": DT, "cancelled_at": DT,
        },
    },
    "EventPage": {
        "type": "object", "required": ["data", "total", "limit", "offset"], "additionalProperties": False,
        "properties": {"data": {"type": "array", "items": _ref("Event")}, "total": {"type": "integer"},
                       "limit": {"type": "integer"}, "offset": {"type": "integer"}},
    },
    "RegistrationPage": {
        "type": "object", "required": ["data", "total", "limit", "offset"], "additionalProperties": False,
        "properties": {"data": {"type": "array", "items": _ref("Registration")}, "total": {"type": "integer"},
                       "limit": {"type": "integer"}, "offset": {"type": "integer"}},
    },
    "NewRegistration": {
        "type": "object", "required": ["first_name", "last_name", "email"], "additionalProperties": False,
        "properties": {
            "first_name": {"type": "string", "maxLength": 100}, "last_name": {"type": "string", "maxLength": 100},
            "email": {"type": "string", "format": "email"},
            "timezone": {"type": "string", "description": "IANA zone for the person's emails; default: the event's"},
            "answers": {"type": "object", "description": "Question id → answer",
                        "additionalProperties": {"oneOf": [{"type": "string"}, {"type": "boolean"},
                                                           {"type": "array", "items": {"type": "string"}}]}},
            "consent_version": {"type": "integer", "minimum": 0,
                                "description": "Version of the privacy notice the person agreed to"},
        },
    },
    "RegistrationOutcome": {
        "type": "object", "required": ["outcome", "registration"], "additionalProperties": False,
        "properties": {
            "outcome": {"enum": ["confirmed", "waitlisted", "pending", "unverified", "duplicate"]},
            "registration": {"oneOf": [_ref("Registration"), {"type": "null"}]},
        },
    },
    "WebhookBody": {
        "type": "object", "required": ["id", "type", "created_at", "data"], "additionalProperties": False,
        "description": "The JSON body of every webhook POST (see docs/api.md for headers and the signature).",
        "properties": {
            "id": {"type": "string", "description": "The event's id: the same for every delivery of it"},
            "type": {"enum": sorted(KINDS)},
            "created_at": {"type": "string", "format": "date-time"},
            "data": {"type": "object", "properties": {"event": {"type": "object"},
                                                      "registration": _ref("Registration"),
                                                      "attendance": {"type": "object"}}},
        },
    },
}


def document(base_url: str) -> dict[str, Any]:
    """The OpenAPI document, with this installation's address."""
    read, write = [{"bearer": []}], [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": "Foyer API", "version": "1.0.0",
                 "description": "Read events and registrations and register people. Tokens are issued by an "
                                "admin (Admin → API tokens) with the read or write scope."},
        "servers": [{"url": base_url.rstrip("/") + "/api/v1"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "An API token, foyer_…; `write` includes `read`."}},
            "schemas": SCHEMAS,
        },
        "paths": {
            "/openapi.json": {"get": {
                "operationId": "getOpenApi", "summary": "This document", "security": [],
                "responses": {"200": {"description": "The OpenAPI document",
                                      "content": {"application/json": {"schema": {"type": "object"}}}},
                              **_errors(429)}}},
            "/events": {"get": {
                "operationId": "listEvents", "summary": "Events, soonest first", "security": read,
                "parameters": [{"name": "status", "in": "query",
                                "schema": {"enum": ["draft", "published", "cancelled"]}}, _LIMIT, _OFFSET],
                "responses": {"200": _json("EventPage", "A page of events"), **_errors(400, 401, 403, 429)}}},
            "/events/{event_id}": {"get": {
                "operationId": "getEvent", "summary": "One event", "security": read, "parameters": [_EVENT_ID],
                "responses": {"200": _json("Event", "The event"), **_errors(401, 403, 404, 429)}}},
            "/events/{event_id}/registrations": {
                "get": {
                    "operationId": "listRegistrations", "summary": "An event's registrations (audited)",
                    "security": read,
                    "parameters": [_EVENT_ID, {"name": "state", "in": "query", "schema": {
                        "enum": ["unverified", "pending", "confirmed", "waitlisted", "denied", "cancelled"]}},
                        _LIMIT, _OFFSET],
                    "responses": {"200": _json("RegistrationPage", "A page of registrations"),
                                  **_errors(400, 401, 403, 404, 429)}},
                "post": {
                    "operationId": "createRegistration",
                    "summary": "Register someone (the public form's rules and emails)", "security": write,
                    "parameters": [_EVENT_ID],
                    "requestBody": {"required": True,
                                    "content": {"application/json": {"schema": _ref("NewRegistration")}}},
                    "responses": {
                        "201": {**_json("RegistrationOutcome", "Registered (confirmed, waitlisted, pending or "
                                                               "unverified)"),
                                "headers": {"Location": {"schema": {"type": "string"}}}},
                        "200": _json("RegistrationOutcome", "The address is already registered (`duplicate`); "
                                                            "the person is re-sent their link, at most every 15 min"),
                        **_errors(400, 401, 403, 404, 409, 413, 422, 429, 503)}},
            },
            "/registrations/{registration_id}": {"get": {
                "operationId": "getRegistration", "summary": "One registration (audited)", "security": read,
                "parameters": [{"name": "registration_id", "in": "path", "required": True,
                                "schema": {"type": "integer"}}],
                "responses": {"200": _json("Registration", "The registration"), **_errors(401, 403, 404, 429)}}},
        },
        "webhooks": {
            kind: {"post": {"summary": label, "requestBody": {"content": {"application/json": {
                "schema": _ref("WebhookBody")}}}, "responses": {"2XX": {"description": "Received"}}}}
            for kind, label in KINDS.items()
        },
    }
