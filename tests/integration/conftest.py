"""Fixtures the integration tests share: the API client that checks every answer against the OpenAPI document."""

from tests.api_client import api, issue_token, openapi_checker  # noqa: F401 (fixtures)
