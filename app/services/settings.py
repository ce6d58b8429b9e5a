"""Site-wide settings: branding now, privacy and more later."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from app.models import Setting, db

HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class Branding:
    site_name: str = "Foyer"
    accent_colour: str = "#1f5fbf"
    logo_filename: str | None = None
    logo_alt: str = ""
    footer_text: str = ""

    @property
    def accent_text_colour(self) -> str:
        """Black or white, whichever contrasts more with the accent (WCAG relative luminance)."""
        return "#000000" if _luminance(self.accent_colour) > 0.179 else "#ffffff"


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
