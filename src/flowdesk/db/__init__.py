"""Database plumbing: metadata, engines, the unit of work, the embedded server, migrations."""
