"""The persisted outbox: side effects enqueued in the caller's transaction, claimed, performed and settled by the
worker, and the registry of their handlers.
"""
