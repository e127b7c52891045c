"""Authentication (API keys) and authorisation (permissions intersected with key scopes)."""
