"""The public API (/public/v1) for external systems (seed 004, "Public API")."""
