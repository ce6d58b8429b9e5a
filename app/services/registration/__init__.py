"""The registration engine and what hangs off it: verification, the roster, exports, reminders and per-person
privacy.
"""
