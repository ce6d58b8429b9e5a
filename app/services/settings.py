"""Site-wide settings: branding (name, colours, logo, footer), how emails present themselves (sender
name, reply-to) and the versioned privacy notice.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import IO

from email_validator import EmailNotValidError, validate_email

from app.models import Setting, User, db, utcnow
from app.services import audit, uploads
from app.services.errors import DomainError

logger = logging.getLogger(__name__)

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
    row = db.session.get(Setting, "branding")
    if row is None or not isinstance(row.value, dict):
        return Branding()
    known = {k: v for k, v in row.value.items() if k in Branding.__dataclass_fields__}
    return Branding(**known)


def save_branding(branding: Branding) -> None:
    row = db.session.get(Setting, "branding")
    if row is None:
        db.session.add(Setting(key="branding", value=asdict(branding)))
    else:
        row.value = asdict(branding)


def check_accent(accent: str, accent_text: str) -> str:
    """Validate an accent colour and its text colour; return the colour in lower case."""
    if not HEX_COLOUR.match(accent or ""):
        raise DomainError("Enter a colour as # followed by six hex digits, e.g. #1f5fbf.", field="accent_colour")
    accent = accent.lower()
    if accent_text not in ("auto", *TEXT_COLOURS):
        raise DomainError("Choose automatic, white or black.", field="accent_text")
    text = TEXT_COLOURS.get(accent_text) or auto_text_colour(accent)
    ratio = contrast_ratio(accent, text)
    if ratio < MIN_CONTRAST:
        name = "white" if text == "#ffffff" else "black"
        raise DomainError(
            f"{name.capitalize()} text on {accent} has a contrast of {ratio:.1f}:1; at least {MIN_CONTRAST}:1 is "
            "needed to be readable. Choose a darker or lighter accent, or automatic text colour.",
            field="accent_colour",
        )
    return accent


def _process_logo(stream: IO[bytes]) -> uploads.ProcessedImage:
    """A logo: at most 2 MB, PNG, JPEG or WebP by content, re-encoded and scaled to fit 800 pixels."""
    data = stream.read(LOGO_MAX_BYTES + 1)
    if len(data) > LOGO_MAX_BYTES:
        raise DomainError(f"The logo is larger than {LOGO_MAX_BYTES // (1024 * 1024)} MB.", field="logo")
    image = uploads.process_image(io.BytesIO(data), max_side=LOGO_MAX_SIDE, field="logo")
    if image.extension not in LOGO_EXTENSIONS:
        raise DomainError("The logo must be a PNG, JPEG or WebP image.", field="logo")
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
        raise DomainError("Enter the name of the site.", field="site_name")
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
        raise DomainError("The sender name must be a single line of text.", field="sender_name")
    value = " ".join(value.split())
    if len(value) > SENDER_NAME_MAX:
        raise DomainError(f"Keep the sender name under {SENDER_NAME_MAX} characters.", field="sender_name")
    return value


def check_reply_to(value: str) -> str:
    """An optional reply-to address: '' or one valid address (no CR/LF, no second address)."""
    value = (value or "").strip()
    if not value:
        return ""
    if _has_control_characters(value):
        raise DomainError("Enter a single email address.", field="reply_to")
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise DomainError(f"Enter a valid email address, or leave it empty. {exc}", field="reply_to") from exc


def update_email_settings(*, actor: User, sender_name: str, reply_to: str) -> EmailSettings:
    """Save the sender name and reply-to address every email is sent with."""
    saved = EmailSettings(sender_name=check_sender_name(sender_name), reply_to=check_reply_to(reply_to))
    row = db.session.get(Setting, EMAIL_SETTING)
    if row is None:
        db.session.add(Setting(key=EMAIL_SETTING, value=asdict(saved)))
    else:
        row.value = asdict(saved)
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
    row = db.session.get(Setting, "privacy")
    if row is None:
        db.session.add(Setting(key="privacy", value=value))
    else:
        row.value = value
    audit.record("settings.privacy_notice", actor=actor, target=("setting", "privacy"),
                 summary=f"Saved privacy notice version {version.version}")
    logger.info("Privacy notice version %s saved by %s", version.version, actor.id)
    return PrivacyNotice(versions=versions)


def brand_stylesheet(branding: Branding) -> str:
    """The branding colours as CSS custom properties (a stored colour that is not #rrggbb falls back)."""
    accent = branding.accent_colour if HEX_COLOUR.match(branding.accent_colour) else "#1f5fbf"
    text = branding.accent_text_colour if HEX_COLOUR.match(branding.accent_text_colour) else "#ffffff"
    return f":root {{ --accent: {accent}; --accent-text: {text}; }}\n"


def brand_version(branding: Branding) -> str:
    """A short hash of what the branding stylesheet and icon show: their URLs carry it, so a change
    reaches every visitor at once while unchanged files stay cached for good.
    """
    import hashlib

    return hashlib.sha256(f"{brand_stylesheet(branding)}{branding.site_name}".encode()).hexdigest()[:12]


def favicon_bytes(branding: Branding) -> bytes:
    """A 32×32 icon in the accent colour with the site name's first letter (an .ico with a PNG inside)."""
    from PIL import Image, ImageDraw

    accent = branding.accent_colour if HEX_COLOUR.match(branding.accent_colour) else "#1f5fbf"
    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, 31, 31), radius=6, fill=accent)
    letter = (branding.site_name.strip()[:1] or "F").upper()
    draw.text((16, 16), letter, fill=branding.accent_text_colour, anchor="mm", font_size=20)
    buffer = io.BytesIO()
    image.save(buffer, format="ICO", sizes=[(32, 32)])
    return buffer.getvalue()
