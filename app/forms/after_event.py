"""Forms for what comes after an event: the organizer's recording decision and feedback survey, and the
attendee's feedback form (a rating plus the survey's questions, as registration questions are asked).
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, FieldList, Form, FormField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length

from app.forms.registration import _question_field
from app.models import Event, QuestionKind
from app.services.after_event import feedback
from app.services.registration import registrations


class LookForRecordingsForm(FlaskForm):
    """A button that only carries the CSRF token."""


class DeclineRecordingForm(FlaskForm):
    """A button that only carries the CSRF token."""


class ApproveRecordingForm(FlaskForm):
    share_transcript = BooleanField(
        _l("Show the transcript to attendees as captions"),
        description=_l("Teams' transcript names who said what. Leave this off unless the speakers agreed."))


class SurveyQuestionForm(Form):
    label = StringField(_l("Question"), validators=[Length(max=300)])
    kind = SelectField(_l("Kind"), choices=[SelectChoice(k.value, k.label) for k in QuestionKind],
                       default=QuestionKind.long_text.value)
    options = TextAreaField(_l("Options (choice questions: one per line)"), validators=[Length(max=5000)])
    required = BooleanField(_l("An answer is required"))


class FeedbackSurveyForm(FlaskForm):
    enabled = BooleanField(
        _l("Ask attendees for feedback with the follow-up"),
        description=_l("The “thank you for joining” email links to a short survey: a rating from 1 to 5 and "
                       "the questions below (leave a question empty to skip it)."))
    questions = FieldList(FormField(SurveyQuestionForm), min_entries=feedback.MAX_QUESTIONS,
                          max_entries=feedback.MAX_QUESTIONS)

    def survey(self) -> list[feedback.SurveyQuestion]:
        subforms = [entry.form for entry in self.questions]
        return [feedback.SurveyQuestion(kind=f.kind.data or "", label=f.label.data or "",
                                        options=(f.options.data or "").splitlines(), required=bool(f.required.data))
                for f in subforms]


def survey_form(event: Event, **kwargs) -> FeedbackSurveyForm:
    """The organizer's survey form, filled with the event's survey (three slots)."""
    saved = list(event.feedback_questions or [])
    rows = [{"label": q["label"], "kind": q["kind"], "options": "\n".join(q.get("options") or []),
             "required": q.get("required", False)} for q in saved]
    rows += [{"label": "", "kind": QuestionKind.long_text.value, "options": "", "required": False}] * (
        feedback.MAX_QUESTIONS - len(rows))
    return FeedbackSurveyForm(data={"enabled": event.feedback_enabled, "questions": rows}, **kwargs)


class FeedbackForm(FlaskForm):
    rating = RadioField(_l("How would you rate the event?"),
                        choices=[SelectChoice(str(v), label) for v, label in feedback.RATING_LABELS.items()],
                        validators=[InputRequired(_l("Choose a rating from 1 to 5."))])

    def question_fields(self):
        return [(q, self[registrations.answer_field(q)]) for q in self.questions]

    def answers(self) -> dict[int, object]:
        return {q.id: f.data for q, f in self.question_fields()}


def feedback_form(event: Event, **kwargs) -> FeedbackForm:
    """The attendee's form: the rating, then a field `q_<n>` per survey question (registration kinds)."""
    questions = feedback.survey_questions(event)
    attrs = {registrations.answer_field(q): _question_field(q) for q in questions}
    form = type("EventFeedbackForm", (FeedbackForm,), attrs)(**kwargs)
    form.questions = questions
    return form
