"""Downloads with JavaScript on: htmx boosts links and forms, and a boosted download would be swapped
into the page as HTML. Each export must arrive as a file."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.browser.test_insights import _event_with_people, _sign_in


def test_every_export_downloads_as_a_file(page, visit, audit, live_server):
    event_id = _event_with_people(live_server.app)
    _sign_in(page, visit)

    downloads = []
    visit(f"/manage/events/{event_id}/registrations")
    for name in ("Export registrations (CSV)", "Export attendance (CSV)"):
        with page.expect_download() as info:
            page.get_by_role("link", name=name).click()
        downloads.append(info.value)
        expect(page.get_by_role("heading", name="Registrations", level=1)).to_be_visible()  # the page stays

    visit("/admin/privacy/")
    page.get_by_label("Attendee's email address").fill("ada@example.org")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download as JSON").click()
    downloads.append(info.value)

    names = [d.suggested_filename for d in downloads]
    assert [n.rsplit(".", 1)[-1] for n in names] == ["csv", "csv", "json"], names
    first = Path(downloads[0].path()).read_text(encoding="utf-8-sig")
    assert "ada@example.org" in first and "<html" not in first
    assert "ada@example.org" in Path(downloads[2].path()).read_text(encoding="utf-8")
