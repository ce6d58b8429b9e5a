"""Site-wide settings: branding (name, colours, logo, footer), how emails present themselves (sender
name, reply-to), the versioned privacy notice, the websites that may embed the registration form, and
the languages attendees are offered.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, TypeVar

from email_validator import EmailNotValidError, validate_email
from flask import Flask, current_app, g, has_app_context, has_request_context
from flask_babel import format_decimal, get_locale, gettext
from PIL import Image, ImageDraw
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from app.models import Setting, User, db, utcnow
from app.services.core import audit, uploads
from app.services.core.errors import DomainError
from app.services.core.page_cache import AgedCache

logger = logging.getLogger(__name__)

T = TypeVar("T")


# --- settings kept per process for a moment -------------------------------------------------------------
# Every public page shows the branding; without this each view would read its row. Each process keeps
# what it read for SETTINGS_CACHE_SECONDS (2 s by default, 0 reads every time). A commit that changed a
# setting empties the process's copy at once (also a rollback after such a flush); other processes see
# the change within those seconds.

_CACHE_KEY = "foyer_settings_cache"
_CHANGED = "foyer_settings_changed"


class SettingsCache(AgedCache[tuple[Any]]):
    """Values read from the settings table, each kept for the cache's age limit (none with 0)."""

    def value(self, key: str, load: Callable[[], T]) -> T:
        """What this process read for `key` within the age limit, else `load()` (then kept)."""
        kept = self.get(key)  # a one-item tuple, so that a kept None is not taken for a miss
        if kept is not None:
            return kept[0]
        value = load()
        self.store(key, (value,))
        return value


def settings_cache(app: Flask | None = None) -> SettingsCache:
    return (app or current_app).extensions[_CACHE_KEY]


def _cached(key: str, load: Callable[[], T]) -> T:
    """`load()`, or what this process read for `key` within the last SETTINGS_CACHE_SECONDS."""
    if not has_app_context() or _changing_settings():
        return load()  # this transaction is changing settings: read what it sees, keep nothing
    return _process_copy(key, load)


def _process_copy(key: str, load: Callable[[], T]) -> T:
    cache = current_app.extensions.get(_CACHE_KEY)
    return load() if cache is None else cache.value(key, load)


def _changing_settings() -> bool:
    session = db.session()
    return bool(session.info.get(_CHANGED)) or any(isinstance(o, Setting) for o in (*session.new, *session.dirty))


#: Where a request keeps the settings it has read: a page asks for the branding and the languages a dozen
#: times (each event title shown in the reader's language asks which language that is).
_REQUEST_COPIES = "_foyer_settings"


def read_setting(key: str, load: Callable[[], T]) -> T:
    """A setting's value as `load()` reads it: read once per request, and kept by the process for
    SETTINGS_CACHE_SECONDS (other processes' changes show within them). Write it with `store(key, …)`,
    which forgets the request's copy; a transaction changing settings keeps none.
    """
    if not has_request_context():
        return _cached(key, load)
    copies = g.get(_REQUEST_COPIES)
    if copies is None:
        copies = {}
        setattr(g, _REQUEST_COPIES, copies)
    elif key in copies:
        return copies[key]
    if _changing_settings():
        return load()  # this transaction is changing settings: read what it sees, keep nothing
    value = copies[key] = _process_copy(key, load)
    return value


def _forget_request_copy(key: str) -> None:
    if has_request_context():
        g.get(_REQUEST_COPIES, {}).pop(key, None)


def _before_flush(session: Session, flush_context, instances) -> None:
    if any(isinstance(obj, Setting) for obj in (*session.new, *session.dirty, *session.deleted)):
        session.info[_CHANGED] = True


def _forget(session: Session) -> None:
    if session.info.pop(_CHANGED, False) and has_app_context():
        g.pop(_REQUEST_COPIES, None)
        if _CACHE_KEY in current_app.extensions:
            settings_cache().clear()


def install(app: Flask, session_class: type[Session]) -> None:
    """Give the app its settings cache and register the change listeners on the session class (once)."""
    app.extensions[_CACHE_KEY] = SettingsCache(max_age=app.config["SETTINGS_CACHE_SECONDS"])
    for name, listener in (("before_flush", _before_flush), ("after_commit", _forget),
                           ("after_rollback", _forget)):
        if not sa_event.contains(session_class, name, listener):
            sa_event.listen(session_class, name, listener)

HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
#: WCAG 2.2 AA for normal text (1.4.3): the header and buttons print text on the accent.
MIN_CONTRAST = 4.5
TEXT_COLOURS = {"white": "#ffffff", "black": "#000000"}

#: Logos: the formats accepted (by content), the largest file, and the largest side after re-encoding.
LOGO_EXTENSIONS = {"png", "jpg", "webp"}
LOGO_MAX_BYTES = 2 * 1024 * 1024
LOGO_MAX_SIDE = 800


@dataclass(frozen=True)
class Branding:
    site_name: str = "Foyer"
    accent_colour: str = "#1f5fbf"
    #: "auto" picks black or white for the best contrast; "white" / "black" force one.
    accent_text: str = "auto"
    logo_filename: str | None = None
    logo_alt: str = ""
    footer_text: str = ""

    @property
    def accent_text_colour(self) -> str:
        """The text colour on the accent: the admin's choice, or black/white by WCAG relative luminance."""
        if self.accent_text in TEXT_COLOURS:
            return TEXT_COLOURS[self.accent_text]
        return auto_text_colour(self.accent_colour)


def auto_text_colour(accent: str) -> str:
    """Black or white, whichever contrasts more with the accent."""
    return "#000000" if _luminance(accent) > 0.179 else "#ffffff"


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def get_branding() -> Branding:
    """The site's branding; read once per request (saving it forgets the request's copy)."""
    return read_setting("branding", _read_branding)


def _read_branding() -> Branding:
    row = db.session.get(Setting, "branding")
    if row is None or not isinstance(row.value, dict):
        return Branding()
    return Branding(**{k: v for k, v in row.value.items() if k in Branding.__dataclass_fields__})


def store(key: str, value: dict[str, Any]) -> None:
    """Write one setting's value, adding its row the first time."""
    _forget_request_copy(key)
    row = db.session.get(Setting, key)
    if row is None:
        db.session.add(Setting(key=key, value=value))
    else:
        row.value = value


def save_branding(branding: Branding) -> None:
    if has_app_context() and _CACHE_KEY in current_app.extensions:
        settings_cache().clear()  # this process's copy at once (the request's: `store`)
    store("branding", asdict(branding))


def check_accent(accent: str, accent_text: str) -> str:
    """Validate an accent colour and its text colour; return the colour in lower case."""
    if not HEX_COLOUR.match(accent or ""):
        raise DomainError(gettext("Enter a colour as # followed by six hex digits, e.g. #1f5fbf."),
                          field="accent_colour")
    accent = accent.lower()
    if accent_text not in ("auto", *TEXT_COLOURS):
        raise DomainError(gettext("Choose automatic, white or black."), field="accent_text")
    text = TEXT_COLOURS.get(accent_text) or auto_text_colour(accent)
    ratio = contrast_ratio(accent, text)
    if ratio < MIN_CONTRAST:
        values = {"accent": accent, "ratio": format_decimal(round(ratio, 1), "0.0"),
                  "minimum": format_decimal(MIN_CONTRAST)}
        if text == "#ffffff":
            message = gettext("White text on %(accent)s has a contrast of %(ratio)s:1; at least %(minimum)s:1 is "
                              "needed to be readable. Choose a darker or lighter accent, or automatic text colour.",
                              **values)
        else:
            message = gettext("Black text on %(accent)s has a contrast of %(ratio)s:1; at least %(minimum)s:1 is "
                              "needed to be readable. Choose a darker or lighter accent, or automatic text colour.",
                              **values)
        raise DomainError(message, field="accent_colour")
    return accent


def _process_logo(stream: IO[bytes]) -> uploads.ProcessedImage:
    """A logo: at most 2 MB, PNG, JPEG or WebP by content, re-encoded and scaled to fit 800 pixels."""
    data = stream.read(LOGO_MAX_BYTES + 1)
    if len(data) > LOGO_MAX_BYTES:
        raise DomainError(gettext("The logo is larger than %(num)s MB.", num=LOGO_MAX_BYTES // (1024 * 1024)),
                          field="logo")
    image = uploads.process_image(io.BytesIO(data), max_side=LOGO_MAX_SIDE, field="logo")
    if image.extension not in LOGO_EXTENSIONS:
        raise DomainError(gettext("The logo must be a PNG, JPEG or WebP image."), field="logo")
    return image


def update_branding(
    *,
    actor: User,
    site_name: str,
    accent_colour: str,
    accent_text: str = "auto",
    footer_text: str = "",
    logo_alt: str = "",
    logo: IO[bytes] | None = None,
    remove_logo: bool = False,
) -> Branding:
    """Save the branding; a new logo is sniffed, re-encoded and stored under a random name, and a
    replaced or removed logo file is deleted once the change commits.
    """
    site_name = " ".join((site_name or "").split())
    if not site_name:
        raise DomainError(gettext("Enter the name of the site."), field="site_name")
    accent = check_accent(accent_colour, accent_text)
    new_logo = _process_logo(logo) if logo is not None else None
    current = get_branding()
    logo_filename = None if remove_logo else current.logo_filename
    if new_logo is not None:
        logo_filename = uploads.store_image(new_logo)
    if current.logo_filename and current.logo_filename != logo_filename:
        uploads.discard_upload(current.logo_filename)
    branding = replace(
        current,
        site_name=site_name,
        accent_colour=accent,
        accent_text=accent_text,
        footer_text=(footer_text or "").strip(),
        logo_filename=logo_filename,
        logo_alt=(logo_alt or "").strip(),
    )
    save_branding(branding)
    audit.record("settings.branding", actor=actor, target=("setting", "branding"), summary="Changed the branding")
    logger.info("Branding updated by %s", actor.id)
    return branding


# --- email sender ------------------------------------------------------------------------------------

EMAIL_SETTING = "email"
SENDER_NAME_MAX = 100


@dataclass(frozen=True)
class EmailSettings:
    """How Foyer's emails present themselves. Set by admins only, never from anything an attendee types."""

    sender_name: str = ""
    reply_to: str = ""


def get_email_settings() -> EmailSettings:
    return _cached(EMAIL_SETTING, _read_email_settings)


def _read_email_settings() -> EmailSettings:
    row = db.session.get(Setting, EMAIL_SETTING)
    if row is None or not isinstance(row.value, dict):
        return EmailSettings()
    return EmailSettings(**{k: str(v) for k, v in row.value.items() if k in EmailSettings.__dataclass_fields__})


def _has_control_characters(value: str) -> bool:
    return any(ch < " " or ch == "\x7f" for ch in value)


def check_sender_name(value: str) -> str:
    """A display name for headers: one line, no control characters, at most 100 characters."""
    value = (value or "").strip()
    if _has_control_characters(value):
        raise DomainError(gettext("The sender name must be a single line of text."), field="sender_name")
    value = " ".join(value.split())
    if len(value) > SENDER_NAME_MAX:
        raise DomainError(gettext("Keep the sender name under %(num)s characters.", num=SENDER_NAME_MAX),
                          field="sender_name")
    return value


def check_reply_to(value: str) -> str:
    """An optional reply-to address: '' or one valid address (no CR/LF, no second address)."""
    value = (value or "").strip()
    if not value:
        return ""
    if _has_control_characters(value):
        raise DomainError(gettext("Enter a single email address."), field="reply_to")
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise DomainError(gettext("Enter a valid email address, or leave it empty."), field="reply_to") from exc


def update_email_settings(*, actor: User, sender_name: str, reply_to: str) -> EmailSettings:
    """Save the sender name and reply-to address every email is sent with."""
    saved = EmailSettings(sender_name=check_sender_name(sender_name), reply_to=check_reply_to(reply_to))
    store(EMAIL_SETTING, asdict(saved))
    audit.record("settings.email", actor=actor, target=("setting", EMAIL_SETTING),
                 summary="Changed the email sender settings")
    logger.info("Email sender settings updated by %s", actor.id)
    return saved


# --- privacy notice ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrivacyVersion:
    version: int
    text: str
    saved_at: str
    saved_by: int | None = None

    @property
    def saved_at_datetime(self) -> datetime:
        return datetime.fromisoformat(self.saved_at)


@dataclass(frozen=True)
class PrivacyNotice:
    """The privacy notice and its history; registrations store the version the attendee agreed to."""

    versions: list[PrivacyVersion] = field(default_factory=list)

    @property
    def current(self) -> PrivacyVersion | None:
        return self.versions[-1] if self.versions else None

    @property
    def text(self) -> str:
        return self.current.text if self.current else ""

    @property
    def version(self) -> int:
        """The current version number; 0 while no notice has been written."""
        return self.current.version if self.current else 0

    def get(self, version: int) -> PrivacyVersion | None:
        return next((v for v in self.versions if v.version == version), None)


def get_privacy_notice() -> PrivacyNotice:
    return _cached("privacy", _read_privacy_notice)


def _read_privacy_notice() -> PrivacyNotice:
    row = db.session.get(Setting, "privacy")
    if row is None or not isinstance(row.value, dict):
        return PrivacyNotice()
    versions = []
    for item in row.value.get("versions", []):
        try:
            versions.append(PrivacyVersion(int(item["version"]), str(item["text"]), str(item["saved_at"]),
                                           item.get("saved_by")))
        except (KeyError, TypeError, ValueError):
            logger.warning("Ignoring a malformed privacy notice version in settings")
    return PrivacyNotice(versions=versions)


def update_privacy_notice(text: str, *, actor: User) -> PrivacyNotice:
    """Save the privacy notice; a changed text becomes a new version, an unchanged one changes nothing."""
    text = (text or "").replace("\r\n", "\n").strip()
    notice = get_privacy_notice()
    if text == notice.text:
        return notice
    version = PrivacyVersion(notice.version + 1, text, utcnow().isoformat(), actor.id)
    versions = [*notice.versions, version]
    value = {"versions": [asdict(v) for v in versions]}
    store("privacy", value)
    audit.record("settings.privacy_notice", actor=actor, target=("setting", "privacy"),
                 summary=f"Saved privacy notice version {version.version}")
    logger.info("Privacy notice version %s saved by %s", version.version, actor.id)
    return PrivacyNotice(versions=versions)


def brand_stylesheet(branding: Branding) -> str:
    """The branding colours as CSS custom properties (a stored colour that is not #rrggbb falls back)."""
    accent = branding.accent_colour if HEX_COLOUR.match(branding.accent_colour) else "#1f5fbf"
    text = branding.accent_text_colour if HEX_COLOUR.match(branding.accent_text_colour) else "#ffffff"
    return f":root {{ --accent: {accent}; --accent-text: {text}; }}\n"


@lru_cache(maxsize=16)
def brand_version(branding: Branding) -> str:
    """A short hash of what the branding stylesheet and icon show: their URLs carry it, so a change
    reaches every visitor at once while unchanged files stay cached for good.
    """
    return hashlib.sha256(f"{brand_stylesheet(branding)}{branding.site_name}".encode()).hexdigest()[:12]


def favicon_bytes(branding: Branding) -> bytes:
    """A 32×32 icon in the accent colour with the site name's first letter (an .ico with a PNG inside)."""
    accent = branding.accent_colour if HEX_COLOUR.match(branding.accent_colour) else "#1f5fbf"
    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, 31, 31), radius=6, fill=accent)
    letter = (branding.site_name.strip()[:1] or "F").upper()
    draw.text((16, 16), letter, fill=branding.accent_text_colour, anchor="mm", font_size=20)
    buffer = io.BytesIO()
    image.save(buffer, format="ICO", sizes=[(32, 32)])
    return buffer.getvalue()


# --- websites that may embed the registration form -------------------------------------------------

EMBED_SETTING = "embed_origins"
#: At most this many websites; a Content-Security-Policy header has to stay a sensible size.
EMBED_ORIGINS_MAX = 20
#: Hosts that may be named over plain http (a website being built on the admin's own machine).
LOCAL_HOSTS = ("localhost", "127.0.0.1")
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_ORIGIN = re.compile(rf"^(?P<scheme>https?)://(?P<host>{_LABEL}(?:\.{_LABEL})*)(?::(?P<port>[0-9]{{1,5}}))?$")
_DEFAULT_PORTS = {"https": 443, "http": 80}


def check_embed_origin(raw: str) -> str:
    """One website origin (scheme, host and an optional port, nothing else), normalised; https is required
    except for http://localhost and http://127.0.0.1. DomainError(field="origins") names a bad one.
    """
    text = (raw or "").strip()
    shown = text[:80]
    candidate = text.lower()
    if candidate.endswith("/") and candidate.count("/") == 3:  # "https://example.org/": the root, no path
        candidate = candidate[:-1]
    scheme, separator, rest = candidate.partition("://")
    if separator and not rest.isascii():  # an internationalised name, in the form browsers send
        host, colon, port = rest.partition(":")
        try:
            candidate = f"{scheme}://{host.encode('idna').decode('ascii')}{colon}{port}"
        except UnicodeError:
            pass
    match = _ORIGIN.match(candidate)
    if not match:
        raise DomainError(gettext("“%(origin)s” is not a website address like https://www.example.org (scheme and "
                                  "host, an optional port, no path).", origin=shown), field="origins")
    scheme, host, port = match["scheme"], match["host"], match["port"]
    if port is not None and not 1 <= int(port) <= 65535:
        raise DomainError(gettext("“%(origin)s” has a port outside 1–65535.", origin=shown), field="origins")
    if scheme == "http" and host not in LOCAL_HOSTS:
        raise DomainError(gettext("“%(origin)s” must use https:// (plain http is only accepted for localhost and "
                                  "127.0.0.1).", origin=shown), field="origins")
    if port is not None and int(port) == _DEFAULT_PORTS[scheme]:
        port = None
    return f"{scheme}://{host}" + (f":{int(port)}" if port is not None else "")


def parse_embed_origins(text: str) -> list[str]:
    """Website origins from free text (one per line, or separated by commas or spaces), deduplicated."""
    origins: list[str] = []
    for raw in re.split(r"[\s,;]+", text or ""):
        if not raw.strip():
            continue
        origin = check_embed_origin(raw)
        if origin not in origins:
            origins.append(origin)
    if len(origins) > EMBED_ORIGINS_MAX:
        raise DomainError(gettext("List at most %(num)s websites.", num=EMBED_ORIGINS_MAX), field="origins")
    return origins


def embed_origins() -> list[str]:
    """The websites allowed to show Foyer's registration form in a frame (read at most once per
    SETTINGS_CACHE_SECONDS: an embedded form's request asks twice, for its origin check and its header).
    """
    return list(_cached(EMBED_SETTING, _read_embed_origins))


def _read_embed_origins() -> tuple[str, ...]:
    # Each stored value is checked again on the way out: they end up in a response header.
    row = db.session.get(Setting, EMBED_SETTING)
    if row is None or not isinstance(row.value, dict):
        return ()
    origins = []
    for value in row.value.get("origins", []):
        try:
            origins.append(check_embed_origin(value if isinstance(value, str) else ""))
        except DomainError:
            logger.warning("Ignoring a malformed embedding origin in settings")
    return tuple(origins)


def save_embed_origins(origins: list[str], *, actor: User) -> list[str]:
    """Set the websites allowed to embed the registration form (admins)."""
    value = {"origins": list(origins)}
    store(EMBED_SETTING, value)
    audit.record("settings.embed_origins", actor=actor, target=("setting", EMBED_SETTING),
                 summary="Changed the websites that may embed registration forms", details={"origins": list(origins)})
    logger.info("Embedding origins set to %s by %s", origins, actor.id)
    return list(origins)


# --- languages ---------------------------------------------------------------------------------------

LANGUAGES_SETTING = "languages"
#: Foyer's catalogs: English is the text of the code and templates, every other language a folder here.
TRANSLATIONS = Path(__file__).resolve().parents[2] / "translations"


@lru_cache(maxsize=1)
def shipped_languages() -> tuple[str, ...]:
    """The languages Foyer ships: English, then every language with a compiled catalog."""
    found = sorted(p.parents[1].name for p in TRANSLATIONS.glob("*/LC_MESSAGES/messages.mo"))
    return ("en", *(code for code in found if code != "en"))


@dataclass(frozen=True)
class Languages:
    """The languages attendees may choose, and the one for a visitor whose browser asks for none of them
    (also the language of the main text of events and of registrations made before languages).
    """

    offered: tuple[str, ...]
    default: str

    @property
    def others(self) -> tuple[str, ...]:
        """The offered languages besides the default: events may have their own text in each."""
        return tuple(code for code in self.offered if code != self.default)


def get_languages() -> Languages:
    """The admin's choice; until an admin saves one, LANGUAGES and DEFAULT_LANGUAGE from the environment."""
    return read_setting(LANGUAGES_SETTING, _read_languages)


def _read_languages() -> Languages:
    initial = Languages(tuple(current_app.config["LANGUAGES"]), current_app.config["DEFAULT_LANGUAGE"])
    row = db.session.get(Setting, LANGUAGES_SETTING)
    if row is None or not isinstance(row.value, dict):
        return initial
    offered = row.value.get("offered")
    default = row.value.get("default")
    if not isinstance(offered, list) or not offered or default not in offered:
        logger.warning("Ignoring malformed language settings; using LANGUAGES and DEFAULT_LANGUAGE")
        return initial
    return Languages(tuple(str(code) for code in offered), str(default))


def update_languages(offered: list[str], default: str, *, actor: User) -> Languages:
    """Set the languages attendees may choose (in the order Foyer ships them) and the default one."""
    shipped = shipped_languages()
    if any(code not in shipped for code in offered):
        raise DomainError(gettext("Choose languages from the list."), field="offered")
    chosen = tuple(code for code in shipped if code in offered)
    if not chosen:
        raise DomainError(gettext("Offer at least one language."), field="offered")
    if default not in chosen:
        raise DomainError(gettext("The default language must be one of the languages offered."), field="default")
    saved = Languages(chosen, default)
    store(LANGUAGES_SETTING, {"offered": list(saved.offered), "default": saved.default})
    audit.record("settings.languages", actor=actor, target=("setting", LANGUAGES_SETTING),
                 summary="Changed the languages offered", details={"offered": list(chosen), "default": default})
    logger.info("Languages set to %s (default %s) by %s", chosen, default, actor.id)
    return saved


def text_language() -> str | None:
    """The language whose own text of an event (`Event.title_in`) is shown now: the language of the page
    or email being written, or None in the default language, which the main text is written in.
    """
    language = str(get_locale() or "")
    return None if not language or language == get_languages().default else language
