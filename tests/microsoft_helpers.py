"""Drive the emulated Microsoft sign-in page the way a person's browser would."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import urlsplit

_INPUT = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
_FORM = re.compile(r'<form method="(?:post|POST)"[^>]*action="([^"]+)"')


def hidden_fields(html: str) -> dict[str, str]:
    return {unescape(k): unescape(v) for k, v in _INPUT.findall(html)}


def sign_in_at_emulator(client, authorize_url: str, user_oid: str):
    """Open the emulator's authorize page, pick `user_oid`, then post the answer back to Foyer."""
    parts = urlsplit(authorize_url)
    page = client.get(parts.path + ("?" + parts.query if parts.query else ""))
    assert page.status_code == 200, page.get_data(as_text=True)[:500]
    html = page.get_data(as_text=True)
    action = unescape(_FORM.search(html).group(1))
    answer = client.post(action, data={**hidden_fields(html), "user": user_oid})
    assert answer.status_code == 200, answer.get_data(as_text=True)[:500]  # the form_post page
    body = answer.get_data(as_text=True)
    callback = unescape(_FORM.search(body).group(1))
    return client.post(urlsplit(callback).path, data=hidden_fields(body))
