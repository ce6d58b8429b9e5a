"""What the domain announces, so that the packages above it can react without being called upward.

A verb lower in the stack (an event's edit, the Microsoft connection breaking) sends one of these
signals; the package that cares connects a receiver. Receivers run synchronously, inside the sender's
transaction, before the verb returns, exactly as a direct call would: they flush and never commit.
They are connected explicitly, once, by `app.connect_signal_receivers` in the app factory (as Indico's
`connect_log_signals` and pretix's receivers do), never as a side effect of importing a module.

Blinker does not promise an order between receivers of one signal, so a reaction that must happen
before another gets its own signal, sent first.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

event_capacity_changed = _signals.signal("event-capacity-changed", doc="""
An organizer asked for a new capacity while editing an event (sender: the `Event`; `capacity`: the new
value, None for unlimited; `actor`: the `User`). The registration engine applies it: it locks the
event, moves the waitlist on and records who was promoted. Sent before `event_updated`.
""")

event_published = _signals.signal("event-published", doc="""
A draft event was published and flushed (sender: the `Event`; `actor`: the `User`). Webhook endpoints
hear of it.
""")

event_updated = _signals.signal("event-updated", doc="""
An event's details changed and were flushed (sender: the `Event`; `actor`; `previous`: the title,
`starts_at` and `ends_at` registrants knew, as ISO strings, or None when nothing they were told about
changed; `notify_attendees`: whether the organizer asked to tell them). Messaging tells registrants.
""")

event_unpublished = _signals.signal("event-unpublished", doc="""
A published event went back to draft (sender: the `Event`; `actor`). Join links stop working.
""")

event_cancelled = _signals.signal("event-cancelled", doc="""
An event was cancelled (sender: the `Event`; `actor`; `was_published`: whether the public ever saw
it). Join links stop working, and registrants of a published event are told.
""")

registration_state_changed = _signals.signal("registration-state-changed", doc="""
A registration moved to a new state and the transition was flushed (sender: the `Registration`;
`from_state`: the state it left, None for a new registration; `transition`: the
`RegistrationTransition` just recorded). Webhook endpoints hear of it.
""")

attendance_imported = _signals.signal("attendance-imported", doc="""
An event's attendance report was imported from Teams and flushed (sender: the `Event`). Webhook
endpoints hear of it.
""")

microsoft_connection_broken = _signals.signal("microsoft-connection-broken", doc="""
The service account's connection needs re-connecting and admins have not been told yet (sender: the
`MicrosoftConnection` row; `admins`: the active admin `User`s; `reason`: Entra's error; `key`: one value
per breakage, for deduplication). Messaging queues one alert email per admin.
""")
