"""Flask-WTF forms: the one validation idiom for every form (CSRF included)."""
