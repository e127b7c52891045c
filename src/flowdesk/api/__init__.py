"""The HTTP edge: the routes of every resource, the FastAPI dependencies (authentication,
the licence and portal gates, the database), and the protocol (problem+json, ETags,
Idempotency-Key, cursor pages, request ids). Nothing below this package knows HTTP."""
