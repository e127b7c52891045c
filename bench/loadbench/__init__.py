"""The load benchmark's parts: configuration, database, seeding, servers, load generators,
report and profile. bench/run.py puts them together (see bench/README.md)."""
