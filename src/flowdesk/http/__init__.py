"""Cross-cutting HTTP pieces: shared schema types, pagination, middleware, ETags."""
