"""Notifications: the relay that turns outbox messages into deliveries (e-mail to the people
seed 004 names, signed webhooks to tenants' endpoints) and sends them with retries, and the
tenant-facing management of deliveries, e-mail templates and webhook endpoints."""
