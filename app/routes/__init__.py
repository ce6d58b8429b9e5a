"""HTTP routes, split by audience: auth, public (attendees), organizer (/manage), admin."""
