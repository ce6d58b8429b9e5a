"""Uploaded images: sniffed with Pillow (never trusting the name or content type), size-capped,
re-encoded without metadata, and stored under UPLOAD_FOLDER with a random name.

Banners, logos and photos are still images: an animated file keeps its first frame only. Its frames are
counted from the headers before any pixel is decoded, so a small file that unpacks to billions of pixels
(an "animation bomb") is refused at once instead of holding a worker for half a minute.

Files are written only once every other check has passed, and files that a change makes obsolete
are deleted only after the transaction commits, so a failed request leaves the disk as it was.
"""

from __future__ import annotations

import io
import logging
import re
import secrets
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from flask import current_app
from flask_babel import gettext
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import event as sa_event

from app.extensions import db
from app.services.core.errors import DomainError

logger = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
#: Limits on the whole file, frames included: checked from the headers, before decoding.
MAX_FRAMES = 300
MAX_TOTAL_PIXELS = 200_000_000
# Pillow's own guard at open() (it warns above this and refuses above twice this).
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
#: Pillow's sniffed format -> the extension we store it under.
FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}
STORED_NAME = re.compile(r"^[0-9a-f]{32}\.(jpg|png|webp|gif)$")

_DISCARD_KEY = "foyer_discard_uploads"
_LISTENING_KEY = "foyer_discard_listening"


class InvalidUpload(DomainError):
    """The uploaded file is not an image Foyer accepts."""


@dataclass(frozen=True)
class ProcessedImage:
    """A re-encoded image held in memory until the change that uses it is known to be valid."""

    data: bytes
    extension: str
    width: int
    height: int


def process_image(stream: IO[bytes], *, max_side: int = 2400, field: str | None = None) -> ProcessedImage:
    """Sniff, check and re-encode an uploaded image; raise `InvalidUpload` with a clear message."""
    raw = stream.read(MAX_IMAGE_BYTES + 1)
    if not raw:
        raise InvalidUpload(gettext("That file is empty."), field=field)
    if len(raw) > MAX_IMAGE_BYTES:
        raise InvalidUpload(gettext("That image is larger than %(num)s MB.", num=MAX_IMAGE_BYTES // (1024 * 1024)),
                            field=field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw), formats=list(FORMATS))
            _check_size(image, field)
            image.seek(0)
            image.load()  # the first frame only
            return _reencode(image, max_side)
    except InvalidUpload:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidUpload(gettext("That image has too many pixels."), field=field) from exc
    except UnidentifiedImageError as exc:
        raise InvalidUpload(gettext("That file is not a JPEG, PNG, WebP or GIF image."), field=field) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        logger.info("Rejected a damaged image upload: %s", exc)
        raise InvalidUpload(gettext("That image is damaged or incomplete."), field=field) from exc


def _check_size(image: Image.Image, field: str | None) -> None:
    """Refuse, from the headers alone, an image whose frames hold too many pixels in all."""
    pixels = image.width * image.height
    if pixels > MAX_IMAGE_PIXELS:
        raise InvalidUpload(gettext("That image has too many pixels."), field=field)
    # GIF counts its frames by walking the frame headers (no pixel is decoded); WebP and APNG state it.
    frames = getattr(image, "n_frames", 1)
    if frames > MAX_FRAMES:
        raise InvalidUpload(gettext("That animation has too many frames (at most %(num)s).", num=MAX_FRAMES),
                            field=field)
    if pixels * frames > MAX_TOTAL_PIXELS:
        raise InvalidUpload(gettext("That animation has too many pixels across its frames."), field=field)


def _reencode(image: Image.Image, max_side: int) -> ProcessedImage:
    """Draw the first frame into a fresh file: EXIF, comments, other frames and trailing bytes stay behind."""
    fmt = image.format or ""
    extension = FORMATS[fmt]
    out = io.BytesIO()
    clean = ImageOps.exif_transpose(image)
    clean.thumbnail((max_side, max_side))
    if fmt == "JPEG":
        clean = clean.convert("RGB")
        clean.save(out, "JPEG", quality=85, optimize=True)
    elif fmt == "PNG":
        if clean.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            clean = clean.convert("RGBA")
        clean.save(out, "PNG", optimize=True)
    elif fmt == "WEBP":
        clean = clean.convert("RGBA" if "A" in clean.getbands() else "RGB")
        clean.save(out, "WEBP", quality=85)
    else:
        clean.save(out, "GIF")
    width, height = clean.size
    return ProcessedImage(out.getvalue(), extension, width, height)


def _folder() -> Path:
    folder = Path(current_app.config["UPLOAD_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def store_image(image: ProcessedImage) -> str:
    """Write a processed image under a random name and return that name."""
    name = f"{secrets.token_hex(16)}.{image.extension}"
    (_folder() / name).write_bytes(image.data)
    logger.info("Stored upload %s (%dx%d)", name, image.width, image.height)
    return name


def copy_upload(filename: str | None) -> str | None:
    """Duplicate a stored upload under a new random name (clones must not share files)."""
    if not filename or not STORED_NAME.match(filename):
        return None
    source = _folder() / filename
    if not source.is_file():
        return None
    name = f"{secrets.token_hex(16)}{source.suffix}"
    shutil.copyfile(source, _folder() / name)
    return name


def discard_upload(filename: str | None) -> None:
    """Delete a stored upload once the current transaction commits (never on rollback)."""
    if not filename or not STORED_NAME.match(filename):
        return
    session = db.session()
    if not session.info.get(_LISTENING_KEY):
        # Listeners on this session instance only; the scoped session is discarded after the request.
        sa_event.listen(session, "after_commit", _delete_discarded)
        sa_event.listen(session, "after_soft_rollback", _forget_discarded)
        session.info[_LISTENING_KEY] = True
    session.info.setdefault(_DISCARD_KEY, []).append(filename)


def _delete_discarded(session) -> None:
    names = session.info.pop(_DISCARD_KEY, [])
    folder = Path(current_app.config["UPLOAD_FOLDER"])
    for name in names:
        try:
            (folder / name).unlink(missing_ok=True)
        except OSError:  # pragma: no cover - a stray file is harmless
            logger.warning("Could not delete upload %s", name)


def _forget_discarded(session, _previous_transaction) -> None:
    session.info.pop(_DISCARD_KEY, None)
