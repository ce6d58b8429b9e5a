"""Registration questions on an event's edit page: add, edit, remove, reorder (see `ordered`)."""

from __future__ import annotations

from flask import Blueprint

from app.models import Question
from app.routes.organizer.events import edit_page, question_form, questions_context
from app.routes.organizer.ordered import OrderedChildren, register_ordered_children
from app.services.events import events
from app.web import require_staff

bp = Blueprint("organizer_questions", __name__, url_prefix="/manage/events")
require_staff(bp)
register_ordered_children(bp, OrderedChildren(
    section="questions", child="question", noun="registration question", model=Question,
    form=question_form, context=questions_context, edit_page=edit_page,
    add=events.add_question, update=events.update_question, remove=events.remove_question,
    move=events.move_question,
))
