"""The admin audit log: an append-only record of every change to a tenant's administration,
written in the transaction of the change (flowdesk.audit.log), read by its admins at
GET /v1/audit-log."""
