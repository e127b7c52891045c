"""flowdesk: a multi-tenant service-desk ticketing service whose workflows are configuration."""

__version__ = "0.1.0"
