"""Speakers on an event's edit page: add, edit (with a photo), remove, reorder (see `ordered`)."""

from __future__ import annotations

from flask import Blueprint

from app.models import Speaker
from app.routes.organizer.events import edit_page, speaker_form, speakers_context
from app.routes.organizer.ordered import OrderedChildren, register_ordered_children
from app.services.events import events
from app.web import require_staff

bp = Blueprint("organizer_speakers", __name__, url_prefix="/manage/events")
require_staff(bp)
register_ordered_children(bp, OrderedChildren(
    section="speakers", child="speaker", noun="speaker", model=Speaker,
    form=speaker_form, context=speakers_context, edit_page=edit_page,
    add=events.add_speaker, update=events.update_speaker, remove=events.remove_speaker,
    move=events.move_speaker, files=True,
))
