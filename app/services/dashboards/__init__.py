"""Read models that span domains: the admin health page and the organizer's event insights."""
