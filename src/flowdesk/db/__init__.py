"""Database plumbing: the metadata, the one pool, the statement compiler, the access-change
listener, the embedded server and migrations."""
