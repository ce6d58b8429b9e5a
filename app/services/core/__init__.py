"""Shared foundations with no domain imports: errors, tokens, crypto, dates and zones, Markdown, uploads, the
audit log, site settings and the public page cache.
"""
