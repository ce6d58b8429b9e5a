"""The `api` client: every response it receives is checked against /api/v1/openapi.json (its status is
documented for that operation, its body matches the documented schema), so the document stays true.
Test packages that call the API import its fixtures into their conftest.py.
"""

from __future__ import annotations

import re

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from app.extensions import db
from app.models import ApiScope, Role
from app.services.accounts import accounts
from app.services.integrations import api_tokens

DOC_URI = "urn:foyer:openapi"
PREFIX = "/api/v1"


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


class OpenApiChecker:
    def __init__(self, document: dict) -> None:
        self.document = document
        self.registry = Registry().with_resource(DOC_URI, Resource.from_contents(document,
                                                                               default_specification=DRAFT202012))
        self.templates = [(re.compile("^" + re.sub(r"\{[^}]+\}", r"[^/]+", path) + "$"), path)
                          for path in document["paths"]]
        self.seen: list[tuple[str, str, int]] = []

    def template_for(self, path: str) -> str:
        matches = [template for regex, template in self.templates if regex.match(path)]
        assert matches, f"{path} is not in the OpenAPI document"
        return matches[0]

    def check(self, method: str, url: str, response) -> None:
        path = url.split("?", 1)[0]
        assert path.startswith(PREFIX), url
        template = self.template_for(path[len(PREFIX):])
        operation = self.document["paths"][template].get(method.lower())
        assert operation is not None, f"{method} {template} is not documented"
        status = str(response.status_code)
        assert status in operation["responses"], f"{method} {template} answered {status}, which is not documented"
        documented = operation["responses"][status]
        assert response.content_type.startswith("application/json"), f"{method} {url}: {response.content_type}"
        schema_ref = f"{DOC_URI}#/" + _pointer("paths", template, method.lower(), "responses", status, "content",
                                               "application/json", "schema")
        assert "content" in documented
        validator = Draft202012Validator({"$ref": schema_ref}, registry=self.registry, format_checker=FormatChecker())
        errors = sorted(validator.iter_errors(response.get_json()), key=lambda e: e.path)
        assert not errors, f"{method} {url} ({status}) does not match the document: " + "; ".join(
            f"{list(e.path)}: {e.message}" for e in errors[:5])
        self.seen.append((method.upper(), template, response.status_code))

    def check_error(self, response) -> None:
        """An answer to a path or method the document does not have: still the documented Error body."""
        assert response.content_type.startswith("application/json"), response.content_type
        validator = Draft202012Validator({"$ref": f"{DOC_URI}#/components/schemas/Error"}, registry=self.registry)
        errors = list(validator.iter_errors(response.get_json()))
        assert not errors, "; ".join(e.message for e in errors[:5])


@pytest.fixture(scope="session")
def openapi_checker(app) -> OpenApiChecker:
    with app.test_client() as client:
        document = client.get(f"{PREFIX}/openapi.json").get_json()
    return OpenApiChecker(document)


class Api:
    """Calls /api/v1 with a bearer token and checks every answer against the OpenAPI document."""

    def __init__(self, client, checker: OpenApiChecker) -> None:
        self.client, self.checker, self.token = client, checker, None

    def request(self, method: str, url: str, *, token: str | None = None, headers: dict | None = None, **kwargs):
        headers = dict(headers or {})
        bearer = token if token is not None else self.token
        if bearer:
            headers.setdefault("Authorization", f"Bearer {bearer}")
        full = url if url.startswith(PREFIX) else PREFIX + url
        response = self.client.open(full, method=method, headers=headers, **kwargs)
        self.checker.check(method, full, response)
        return response

    def get(self, url: str, **kwargs):
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs):
        return self.request("POST", url, **kwargs)


@pytest.fixture
def api(client, openapi_checker) -> Api:
    return Api(client, openapi_checker)


@pytest.fixture
def issue_token(app):
    """Issue an API token directly (the admin pages have their own tests); returns the plain token."""

    def _issue(scope: ApiScope = ApiScope.read, name: str = "CRM sync") -> str:
        with app.app_context():
            admin = accounts.create_user(f"token-admin-{name.replace(' ', '-').lower()}@example.org", role=Role.admin,
                                         password=None, name="Token admin")
            db.session.flush()
            issued = api_tokens.issue(name, scope.value, actor=admin)
            db.session.commit()
            return issued.plain

    return _issue
