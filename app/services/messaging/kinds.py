"""What Foyer sends: every kind of message with its default subject and opening paragraph, which of them
go to staff and which an organizer may reword, and the few rules every message's header fields follow.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

#: A recipient's name as the message log keeps it (a first and a last name may each be 100 characters).
RECIPIENT_NAME_MAX = 200

SUBJECT_MAX = 200
INTRO_MAX = 5_000


def N_(text: str) -> str:  # noqa: N802 — the usual name of gettext's marker
    """Mark a string for translation where it is defined; it is translated where it is used (rendering)."""
    return text


@dataclass(frozen=True)
class Kind:
    label: str
    subject: str
    intro: str
    #: Show the personal manage link.
    manage_link: bool = True


#: Every message type. Subjects and intros may use {title}; the intro also {position} (waitlist).
KINDS: dict[str, Kind] = {
    "confirmed": Kind(N_("Registration confirmed"), N_("You're registered: {title}"),
                      N_("You're registered for {title}. Your seat is confirmed.")),
    "pending": Kind(N_("Pending approval"), N_("Registration received: {title}"),
                    N_("Thanks for registering for {title}. The organizer approves each registration by hand; "
                    "we'll email you as soon as they decide.")),
    "approved": Kind(N_("Approved"), N_("Approved: {title}"),
                     N_("Good news: your registration for {title} has been approved. Your seat is confirmed.")),
    "approved_waitlisted": Kind(N_("Approved, on the waitlist"), N_("Approved — on the waitlist: {title}"),
                                N_("Your registration for {title} has been approved, but the event is fully booked, "
                                "so you're on the waitlist{position}. If a seat frees up, you'll get it "
                                "automatically and we'll email you.")),
    "denied": Kind(N_("Declined"), N_("Registration declined: {title}"),
                   N_("Sorry, your registration for {title} was not accepted."), manage_link=False),
    "waitlisted": Kind(N_("Waitlisted"), N_("You're on the waitlist: {title}"),
                       N_("{title} is fully booked, so you're on the waitlist{position}. If a seat frees up, "
                       "you'll get it automatically in the order people joined, and we'll email you.")),
    "promoted": Kind(N_("Promoted from the waitlist"), N_("A seat is yours: {title}"),
                     N_("A seat has become free and it's yours: you're now confirmed for {title}.")),
    "reminder": Kind(N_("Reminder"), N_("Reminder: {title} starts {when}"),
                     N_("This is a reminder: {title} starts {when}.")),
    "event_changed": Kind(N_("Event changed"), N_("Changed: {title}"),
                          N_("The organizer has changed the details of {title}. Please check the new date and "
                          "time below; the updated calendar invitation is attached.")),
    "event_cancelled": Kind(N_("Event cancelled"), N_("Cancelled: {title}"),
                            N_("We're sorry: {title} has been cancelled."), manage_link=False),
    "cancelled": Kind(N_("Registration cancelled"), N_("Registration cancelled: {title}"),
                      N_("Your registration for {title} has been cancelled."), manage_link=False),
    "organizer": Kind(N_("Organizer message"), "{title}", ""),
    "verify": Kind(N_("Confirm email address"), N_("Confirm your email address: {title}"),
                   N_("Please confirm your email address to complete your registration for {title}."),
                   manage_link=False),
    "resend": Kind(N_("Link re-sent"), N_("Your registration link: {title}"),
                   N_("Someone — probably you — tried to register for {title} with this address, which is already "
                   "registered. Nothing has changed. Here is your personal link again.")),
    "test": Kind(N_("Test email"), N_("Test email from {title}"), N_("This is a test email from {title}."),
                 manage_link=False),
    "followup_attended": Kind(N_("Follow-up: thanks for joining"), N_("Thank you for joining {title}"),
                              N_("Thank you for joining {title}."), manage_link=False),
    "followup_missed": Kind(N_("Follow-up: sorry we missed you"), N_("Sorry we missed you at {title}"),
                            N_("We are sorry we missed you at {title}."), manage_link=False),
    "join_link": Kind(N_("New join link"), N_("Your new join link: {title}"),
                      N_("The organizer of {title} has issued you a new personal join link. The previous link no "
                      "longer works."), manage_link=False),
    # Staff emails: about the installation, not an event ({site} is the site name).
    "admin_alert": Kind(N_("Admin alert"), N_("{site} needs you to re-connect Microsoft 365"),
                        N_("{site} could not renew its access to Microsoft 365 and has paused Teams meeting work."),
                        manage_link=False),
    "staff_invite": Kind(N_("Staff invitation"), N_("You're invited to {site}"),
                         N_("You have been invited to {site} as {role}. Choose a password to finish setting up your "
                         "account."), manage_link=False),
    "password_reset": Kind(N_("Password reset"), N_("Reset your {site} password"),
                           N_("Someone — probably you — asked to reset the password of your {site} account. Choose a "
                           "new password with the link below."), manage_link=False),
}
#: Kinds sent to staff, rendered by `render_staff` (no event).
STAFF_KINDS = ("admin_alert", "staff_invite", "password_reset")
#: Types whose subject and intro an organizer may override per event.
OVERRIDABLE = ("confirmed", "pending", "approved", "denied", "waitlisted", "promoted", "reminder", "event_changed",
               "event_cancelled", "cancelled")


def clean_header(value: str) -> str:
    """No CR/LF or control characters in anything that becomes a header (subject, names)."""
    return " ".join("".join(ch if ch >= " " and ch != "\x7f" else " " for ch in value or "").split())


def new_operation_id() -> str:
    """The Operation-Id Foyer chooses for one logical send, stored with the message before it is sent
    (so a retry or a crash check reuses it). Random, not derived from the dedupe key: keys name rows by
    id, and SQLite can hand a deleted row's id to a new one.
    """
    return str(uuid.uuid4())
