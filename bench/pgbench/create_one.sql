-- flowdesk's create, one (hot) tenant, as separate statements in one transaction: the
-- counter UPDATE … RETURNING, the ticket, its "created" event, its outbox message. Tenant 0 of
-- the deterministic seed (bench/loadbench/seed.py).
\set t 0
BEGIN;
UPDATE ticket_counters SET last_number = last_number + 1
  WHERE tenant_id = ('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid
  RETURNING last_number AS n \gset
INSERT INTO tickets (tenant_id, id, number, prefix, title, description, type, catalog_item,
                     workflow, status, status_category, priority, requester_id)
  VALUES (('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid, gen_random_uuid(), :n,
          'TKT', 'Printer on fire', 'The printer on the third floor is on fire again.',
          'incident', 'itsm_incident', 'itsm_default', 'open', 'initial', 'HIGH',
          ('00000000-0000-4000-9000-' || lpad(:t::text, 12, '0'))::uuid)
  RETURNING id AS ticket \gset
INSERT INTO ticket_events (tenant_id, ticket_id, kind, actor_id, data)
  VALUES (('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid, :ticket::uuid, 'created', ('00000000-0000-4000-9000-' || lpad(:t::text, 12, '0'))::uuid,
          '{"status": "open", "priority": "HIGH", "catalog_item": "itsm_incident"}');
INSERT INTO outbox (tenant_id, topic, payload)
  VALUES (('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid, 'ticket.created', '{"actor_id": "00000000-0000-4000-9000-000000000000"}');
END;
