"""Foyer for other tools: API tokens (api_tokens.py), the JSON shapes of events and registrations that
the API and webhooks share (representations.py), and signed webhook deliveries through the outbox
(webhooks.py).
"""
