"""Files attached to tickets (issue 13): uploaded streamed, kept in PostgreSQL in chunks (the
default, as Request Tracker keeps them) or in an S3-compatible bucket, and read back with the
ticket's visibility rules (docs/adr/0017-attachments.md)."""
