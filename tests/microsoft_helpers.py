"""Drive the emulated Microsoft sign-in page the way a person's browser would."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urljoin, urlsplit

_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_FORM = re.compile(r'<form method="(?:post|POST)"[^>]*action="([^"]+)"')


def hidden_fields(html: str) -> dict[str, str]:
    return {unescape(k): unescape(v) for k, v in _INPUT.findall(html)}


def emulator_answer(client, authorize_url: str, user_oid: str) -> tuple[str, dict[str, str]]:
    """Open the emulator's authorize page (on Microsoft's side: the app's in-process emulator), pick
    `user_oid`; return the form post its answer page sends back to Foyer (path and fields), unsent."""
    session = client.application.extensions["microsoft"].session
    page = session.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text[:500]
    action = urljoin(authorize_url, unescape(_FORM.search(page.text).group(1)))
    answer = session.post(action, data={**hidden_fields(page.text), "user": user_oid}, timeout=10)
    assert answer.status_code == 200, answer.text[:500]  # the form_post page
    callback = unescape(_FORM.search(answer.text).group(1))
    return urlsplit(callback).path, hidden_fields(answer.text)


def sign_in_at_emulator(client, authorize_url: str, user_oid: str):
    """Open the emulator's authorize page, pick `user_oid`, then post the answer back to Foyer."""
    path, fields = emulator_answer(client, authorize_url, user_oid)
    return client.post(path, data=fields)
