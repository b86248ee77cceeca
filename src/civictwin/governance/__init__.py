"""Who may read what: API tokens and roles, dataset access levels, and the request audit log.

Governance is consulted by the API (and by sources when they record access levels); it never imports
them. Tokens and the audit log live in small files beside the twin's store, so the CLI can create or
revoke a token while a server holds the store open read-only, and the server sees the change at once.
"""
