"""Fixtures the integration tests share: the in-process Microsoft emulator, and the API client that checks
every answer against the OpenAPI document."""

import pytest

from tests.api_client import api, issue_token, openapi_checker  # noqa: F401 (fixtures)


@pytest.fixture
def emulator(app):
    """The Microsoft emulator the app's clients talk to, for arranging faults and reading what it received."""
    return app.extensions["microsoft"].emulator
