"""Tickets: numbering, the workflow wired to PostgreSQL, comments, the audit trail."""
