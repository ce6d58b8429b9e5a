"""Admin pages that lead to API calls check those answers against the OpenAPI document too."""

from tests.api_client import api, openapi_checker  # noqa: F401 (fixtures)
