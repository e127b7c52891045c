"""The ITSM add-on's controls: the licence (set by the platform operator only), feature
flags, quotas and the "ITSM Agent" system group (seed 004)."""
