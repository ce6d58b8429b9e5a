"""Events: the management verbs, the public catalogue, iCalendar output and Teams meetings."""
