"""Forms of the live part beside the call: asking a question, voting, and the organizer's moderation.

CSRF is checked for every POST by CSRFProtect (the templates carry the token), so these forms leave
it out of their own validation, as MoveForm does; lengths are checked here and again by the services.
"""

from __future__ import annotations

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from app.services.live import polls, questions


class _NoCsrf(FlaskForm):
    class Meta:
        csrf = False


class AskForm(_NoCsrf):
    """An attendee's question (the prefix keeps its ids apart from other forms on the join page)."""

    body = TextAreaField(_l("Your question"), validators=[DataRequired(message=_l("Type your question first.")),
                                                          Length(max=questions.QUESTION_MAX)],
                         render_kw={"maxlength": questions.QUESTION_MAX, "rows": 3})
    anonymous = BooleanField(_l("Ask anonymously (your name is not shown to anyone)"))


class VoteForm(_NoCsrf):
    """The answers an attendee picks in a poll (ids of its options)."""

    choice = SelectMultipleField(_l("Your answer"), coerce=int)

    def __init__(self, poll, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.choice.choices = [(o.id, o.label) for o in poll.options]


class SettingsForm(_NoCsrf):
    allow_anonymous = BooleanField(_l("Attendees may ask anonymously"))
    moderate_questions = BooleanField(_l("Approve questions before attendees see them"))


class AnswerForm(_NoCsrf):
    answer = TextAreaField(_l("Answer"), validators=[Length(max=questions.ANSWER_MAX)],
                           render_kw={"maxlength": questions.ANSWER_MAX, "rows": 3})
    live = BooleanField(_l("Answered live in the call"))


class PollForm(_NoCsrf):
    """A new poll: its question, its answers one per line, single or multiple choice."""

    prompt = StringField(_l("Poll question"), validators=[DataRequired(message=_l("Enter the poll's question.")),
                                                          Length(max=polls.PROMPT_MAX)],
                         render_kw={"maxlength": polls.PROMPT_MAX})
    options = TextAreaField(_l("Answers, one per line"),
                            validators=[DataRequired(message=_l("Give the answers to choose from."))],
                            render_kw={"rows": 4})
    multiple = BooleanField(_l("Attendees may pick several answers"))

    def validate_options(self, field) -> None:
        if len(field.data or "") > polls.MAX_OPTIONS * (polls.OPTION_MAX + 2):
            raise ValidationError(gettext("That is too much text for a poll's answers."))

    def option_lines(self) -> list[str]:
        return (self.options.data or "").splitlines()
