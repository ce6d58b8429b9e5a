"""An event's ordered children on its edit page (registration questions, speakers): add, edit, remove and
reorder, registered once for each kind, as Flask's docs register one API per model (`register_api`).

Each action is a plain form POST. With htmx the same view answers with the kind's section only (its
`<section>_section` macro), so the page never reloads; without JavaScript it redirects back to the edit
page at the section's anchor. For a kind with section "questions" and one child called "question":

    GET  /manage/events/<event_id>/questions                           questions_GET
    POST /manage/events/<event_id>/questions                           questions_POST
    POST /manage/events/<event_id>/questions/<question_id>             question_POST
    POST /manage/events/<event_id>/questions/<question_id>/delete      question_delete_POST
    POST /manage/events/<event_id>/questions/<question_id>/move        question_move_POST
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, request, url_for
from flask_login import current_user
from werkzeug.datastructures import CombinedMultiDict, MultiDict

from app.extensions import db
from app.forms.events import MoveForm
from app.models import Event
from app.services.core.errors import DomainError
from app.web import apply_domain_error, load_managed_event, redirect_to, wants_fragment


@dataclass(frozen=True)
class OrderedChildren:
    """One kind of an event's ordered children, and the verbs that change them."""

    #: The URL segment, the edit page's section and anchor, and the `<section>_section` macro: "questions".
    section: str
    #: One child, in endpoint names and the URL's id: "question" (question_POST, <question_id>).
    child: str
    #: What a person calls one, in view docstrings: "registration question".
    noun: str
    model: type
    #: `form(child=None, *, formdata)`: blank for adding, or filled from a child for editing.
    form: Callable[..., Any]
    #: `context(event, *, add_form=None, failed=None)`: what the section's macro needs.
    context: Callable[..., dict]
    #: The edit page: `edit_page(event, *, status, section, <section>=context)`.
    edit_page: Callable[..., Any]
    add: Callable[..., Any]
    update: Callable[..., Any]
    remove: Callable[..., Any]
    move: Callable[..., Any]
    #: Whether the forms carry files (a speaker's photo).
    files: bool = False


def section_context(event: Event, children, form: Callable[..., Any], *, add_form=None,
                    failed: tuple[int, Any] | None = None) -> dict:
    """What a section of ordered children needs; `failed` is (child id, its form that did not validate)."""
    edit_forms = {child.id: form(child) for child in children}
    if failed is not None:
        edit_forms[failed[0]] = failed[1]
    return {"event": event, "add_form": add_form or form(), "edit_forms": edit_forms,
            "open_id": failed[0] if failed else None, "editable": not event.is_cancelled}


def register_ordered_children(bp: Blueprint, kind: OrderedChildren) -> None:
    """Register the list, add, edit, remove and move views of `kind` on `bp` (under /<event_id>/<section>)."""
    section, child_id = kind.section, f"{kind.child}_id"

    def submitted() -> MultiDict:
        """The posted fields, with the files when the forms carry them (as Flask-WTF would pass them)."""
        return CombinedMultiDict((request.files, request.form)) if kind.files else request.form

    def load_child(event: Event, ident: int):
        found = db.session.get(kind.model, ident)
        if found is None or found.event_id != event.id:
            abort(404)
        return found

    def section_or_redirect(event: Event):
        if wants_fragment():
            return kind.edit_page(event, section=section)
        return redirect_to(url_for("organizer_events.event_edit_GET", event_id=event.id, _anchor=section))

    def done(event: Event):
        """After a change: the fresh section for htmx, a redirect to the section otherwise."""
        if wants_fragment():
            db.session.refresh(event)
        return section_or_redirect(event)

    def refused(event: Event, status: int, **context):
        db.session.rollback()
        return kind.edit_page(event, status=status, section=section, **context)

    def list_GET(event_id: int):
        event = load_managed_event(event_id)
        return section_or_redirect(event)

    def saved(form, verb, target) -> bool:
        """Validate the form and run `verb(target, data)`; True once that is committed."""
        if not form.validate():
            return False
        try:
            verb(target, form.to_data(), actor=current_user)
        except DomainError as exc:
            apply_domain_error(form, exc)
            return False
        db.session.commit()
        return True

    def add_POST(event_id: int):
        event = load_managed_event(event_id)
        form = kind.form(formdata=submitted())
        if saved(form, kind.add, event):
            return done(event)
        return kind.edit_page(event, status=422, section=section, **{section: kind.context(event, add_form=form)})

    def edit_POST(event_id: int, **ids: int):
        event = load_managed_event(event_id)
        found = load_child(event, ids[child_id])
        form = kind.form(found, formdata=submitted())
        if saved(form, kind.update, found):
            return done(event)
        db.session.rollback()  # the section shows the saved values beside this form's errors
        return kind.edit_page(event, status=422, section=section,
                              **{section: kind.context(event, failed=(ids[child_id], form))})

    def delete_POST(event_id: int, **ids: int):
        event = load_managed_event(event_id)
        found = load_child(event, ids[child_id])
        try:
            kind.remove(found, actor=current_user)
        except DomainError:
            return refused(event, 409)
        db.session.commit()
        return done(event)

    def move_POST(event_id: int, **ids: int):
        event = load_managed_event(event_id)
        found = load_child(event, ids[child_id])
        form = MoveForm(formdata=request.form)
        if not form.validate():
            return refused(event, 422)
        try:
            kind.move(found, form.direction.data, actor=current_user)
        except DomainError:
            return refused(event, 409)
        db.session.commit()
        return done(event)

    one = f"/<int:event_id>/{section}/<int:{child_id}>"
    views = [
        (f"/<int:event_id>/{section}", "GET", list_GET, f"{section}_GET",
         f"The {kind.noun}s section (htmx) or the edit page at that section."),
        (f"/<int:event_id>/{section}", "POST", add_POST, f"{section}_POST", f"Add a {kind.noun}."),
        (one, "POST", edit_POST, f"{kind.child}_POST", f"Save changes to a {kind.noun}."),
        (f"{one}/delete", "POST", delete_POST, f"{kind.child}_delete_POST",
         f"Remove a {kind.noun} (the page asked for confirmation first)."),
        (f"{one}/move", "POST", move_POST, f"{kind.child}_move_POST", f"Move a {kind.noun} one place up or down."),
    ]
    for rule, method, view, endpoint, doc in views:
        view.__name__ = view.__qualname__ = endpoint
        view.__doc__ = doc
        bp.add_url_rule(rule, endpoint, view, methods=[method])
