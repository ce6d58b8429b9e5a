"""After the event: the follow-up emails (followups.py), the meeting's recordings read from Graph and
released with the organizer's approval (recordings.py), and the feedback survey (feedback.py).
"""
