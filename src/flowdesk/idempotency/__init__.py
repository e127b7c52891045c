"""Idempotency keys: the stored first answer to a POST, replayed to its retries."""
