"""Domain verbs. Services flush, never commit; routes and jobs commit once at the edge."""
