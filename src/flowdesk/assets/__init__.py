"""Seed 004's asset integration: the registry of assets and movements tickets refer to."""
