"""API usage controls: rate limits per API key and usage metering (seed 004, "Public API")."""
