"""The email/SMS pipeline: kinds, rendering and wording overrides, queueing with dedupe, the quota
dispatcher, ACS send/status/SMS, staff emails, delivery reports, and the message log's list and retry.
"""
