import io
import itertools

import pytest
from PIL import Image

from app.extensions import db
from app.models import Setting
from app.services.core.settings import check_accent, contrast_ratio

VALID = {"site_name": "Acme Events", "accent_colour": "#0b5394", "accent_picker": "#1f5fbf", "accent_text": "auto",
         "footer_text": "Acme Inc., 1 Main Street", "logo_alt": ""}


def _text(response):
    return response.get_data(as_text=True)


def _image(fmt="PNG", size=(1200, 300), colour=(200, 30, 30)):
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format=fmt)
    return buffer.getvalue()


def _save(client, **changes):
    return client.submit("/admin/branding", {**VALID, **changes})


def _branding(app):
    with app.app_context():
        row = db.session.get(Setting, "branding")
        return dict(row.value) if row else None


@pytest.fixture
def admin(auth):
    return auth.login_as_admin()


def test_valid_branding_shows_on_every_page(app, client, admin):
    response = _save(client)
    assert response.status_code == 303
    page = _text(client.get("/"))
    assert "<span>Acme Events</span>" in page and "Acme Inc., 1 Main Street" in page
    assert "<title>Upcoming events · Acme Events</title>" in page
    assert "--accent: #0b5394; --accent-text: #ffffff;" in _text(client.get("/brand.css"))
    form = _text(client.get("/admin/branding"))
    assert 'value="#0b5394"' in form and 'type="color"' in form


@pytest.mark.db_agnostic
@pytest.mark.parametrize("colour", ["#12345", "red", "#12345g", "", "javascript:x"])
def test_malformed_colour_is_rejected(app, client, admin, colour):
    response = _save(client, accent_colour=colour)
    assert response.status_code == 422
    assert "six hex digits" in _text(response)
    assert _branding(app) is None


@pytest.mark.db_agnostic
def test_low_contrast_text_on_accent_is_rejected(app, client, admin):
    response = _save(client, accent_colour="#ffcc00", accent_text="white")
    assert response.status_code == 422
    assert "White text on #ffcc00 has a contrast of 1.5:1" in _text(response)
    assert _branding(app) is None
    # The same accent with automatic (black) text is fine.
    assert _save(client, accent_colour="#ffcc00", accent_text="auto").status_code == 303
    assert "--accent-text: #000000;" in _text(client.get("/brand.css"))


def test_automatic_text_colour_always_reaches_aa_contrast():
    steps = range(0, 256, 17)
    for r, g, b in itertools.product(steps, steps, steps):
        colour = f"#{r:02x}{g:02x}{b:02x}"
        check_accent(colour, "auto")  # raises below 4.5:1
    assert contrast_ratio("#777777", "#000000") >= 4.5


def test_picker_wins_when_the_hex_box_was_left_alone(app, client, admin):
    _save(client)
    assert _save(client, accent_colour="#0b5394", accent_picker="#6264a7").status_code == 303
    assert _branding(app)["accent_colour"] == "#6264a7"
    # When both change, the typed value wins.
    assert _save(client, accent_colour="#17633a", accent_picker="#000080").status_code == 303
    assert _branding(app)["accent_colour"] == "#17633a"


def test_logo_upload_is_reencoded_under_a_random_name(app, client, admin):
    response = _save(client, logo=(io.BytesIO(_image("PNG")), "../../evil name.png"), logo_alt="Acme logo")
    assert response.status_code == 303
    name = _branding(app)["logo_filename"]
    assert name.endswith(".png") and "evil" not in name and "/" not in name
    stored = app.config["UPLOAD_FOLDER"] / name
    with Image.open(stored) as image:
        assert image.format == "PNG" and max(image.size) == 800
    page = _text(client.get("/"))
    assert f'src="/uploads/{name}" alt="Acme logo"' in page
    with client.get(f"/uploads/{name}") as served:
        assert served.status_code == 200 and served.mimetype == "image/png"

    # Replacing the logo deletes the old file once saved; removing it clears it.
    assert _save(client, logo=(io.BytesIO(_image("WEBP", (64, 64))), "x.webp")).status_code == 303
    second = _branding(app)["logo_filename"]
    assert second.endswith(".webp") and not stored.exists()
    assert _save(client, remove_logo="y").status_code == 303
    assert _branding(app)["logo_filename"] is None
    assert not (app.config["UPLOAD_FOLDER"] / second).exists()


@pytest.mark.db_agnostic
@pytest.mark.parametrize(("payload", "message"), [
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "not a JPEG, PNG, WebP or GIF"),
    ("truncated", "damaged"),
    (b"", "empty"),
    ("gif", "must be a PNG, JPEG or WebP"),
    ("huge", "larger than 2 MB"),
])
def test_bad_logo_uploads_are_rejected_and_nothing_is_saved(app, client, admin, payload, message):
    if payload == "truncated":
        payload = _image("PNG", (400, 400))[:200]
    elif payload == "gif":
        payload = _image("GIF", (40, 40))
    elif payload == "huge":
        payload = _image("PNG", (40, 40)) + b"\x00" * (2 * 1024 * 1024)
    before = set(app.config["UPLOAD_FOLDER"].glob("*")) if app.config["UPLOAD_FOLDER"].exists() else set()
    response = _save(client, logo=(io.BytesIO(payload), "logo.png"))
    # Werkzeug's test client spools a large body to a temporary file and leaves it to the caller.
    response.request.environ["wsgi.input"].close()
    assert response.status_code == 422
    assert message in _text(response)
    assert _branding(app) is None
    after = set(app.config["UPLOAD_FOLDER"].glob("*")) if app.config["UPLOAD_FOLDER"].exists() else set()
    assert after == before


@pytest.mark.db_agnostic
def test_site_name_is_required(app, client, admin):
    response = _save(client, site_name="   ")
    assert response.status_code == 422 and _branding(app) is None


def test_privacy_notice_is_versioned(app, client, admin):
    page = _text(client.get("/admin/branding"))
    assert "No privacy notice yet" in page

    def save(text):
        return client.submit("/admin/branding/privacy", {"privacy_text": text})

    assert save("We keep your name and email.").status_code == 303
    assert "Current version: <strong>1</strong>" in _text(client.get("/admin/branding"))
    assert save("We keep your name and email.\r\n").status_code == 303  # unchanged: same version
    assert save("We keep your name and email for 90 days.").status_code == 303
    page = _text(client.get("/admin/branding"))
    assert "Current version: <strong>2</strong>" in page and "Version 1, saved" in page
    with app.app_context():
        versions = db.session.get(Setting, "privacy").value["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["text"] == "We keep your name and email."
    assert versions[1]["text"] == "We keep your name and email for 90 days."
    assert all(v["saved_at"] and v["saved_by"] for v in versions)

    too_long = save("x" * 20001)
    assert too_long.status_code == 422


def _brand_links(page: str) -> tuple[str, str]:
    import re

    css = re.search(r'<link rel="stylesheet" href="(/brand\.css\?v=[0-9a-f]{12})">', page)
    icon = re.search(r'<link rel="icon" href="(/favicon\.ico\?v=[0-9a-f]{12})"', page)
    assert css and icon, "every page links the branding stylesheet and icon by version"
    return css.group(1), icon.group(1)


def test_branding_urls_change_with_the_branding_and_are_cached_for_good(app, client, admin):
    old_css, old_icon = _brand_links(_text(client.get("/")))
    for url in (old_css, old_icon):
        cache = client.get(url).headers["Cache-Control"]
        assert "immutable" in cache and "max-age=31536000" in cache
    _save(client)
    new_css, new_icon = _brand_links(_text(client.get("/")))
    assert new_css != old_css and new_icon != old_icon  # the next page load fetches the new colours at once
    assert "--accent: #0b5394;" in _text(client.get(new_css))
    # An unversioned or outdated URL still answers, but is revalidated on every use.
    for url in ("/brand.css", old_css, "/favicon.ico"):
        assert client.get(url).headers["Cache-Control"] == "no-cache"
    assert "--accent: #0b5394;" in _text(client.get(old_css))
    etag = client.get("/favicon.ico").headers["ETag"]
    assert client.get("/favicon.ico", headers={"If-None-Match": etag}).status_code == 304


def test_favicon_is_an_icon_in_the_accent_colour(app, client, admin):
    _save(client)
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/x-icon"
    icon = Image.open(io.BytesIO(response.data))
    assert icon.format == "ICO" and icon.size == (32, 32)
    assert icon.convert("RGB").getpixel((3, 16)) == (0x0b, 0x53, 0x94)
