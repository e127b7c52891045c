"""The platform operator's API (/platform/v1): tenants, ITSM licences, quota alerts, usage.
Guarded by the platform credential (FLOWDESK_PLATFORM_TOKEN), never by a tenant's key."""
