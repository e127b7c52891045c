"""The growth benchmark's parts (bench/growth.py runs them)."""
