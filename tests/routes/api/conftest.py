"""The API's tests call it through the `api` client, which checks every answer against the OpenAPI document."""

from tests.api_client import api, issue_token, openapi_checker  # noqa: F401 (fixtures)
