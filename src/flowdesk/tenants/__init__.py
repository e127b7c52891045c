"""Tenants and their administration: users, groups (permissions), API keys."""
