-- flowdesk's create as the reference app sends it: one autocommitted statement that takes the
-- tenant's next number (UPDATE … RETURNING, only for a live requester), inserts the ticket,
-- its "created" event and its outbox message, and returns it with the names. A random
-- tenant of the deterministic seed (bench/loadbench/seed.py); -D ntenants=N.
\set t random(0, :ntenants - 1)
WITH requester AS (
  SELECT u.id FROM users u
  WHERE u.tenant_id = ('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid
    AND u.id = ('00000000-0000-4000-9000-' || lpad(:t::text, 12, '0'))::uuid AND u.deleted_at IS NULL
), counter AS (
  UPDATE ticket_counters c SET last_number = c.last_number + 1
  FROM requester, tenants t
  WHERE c.tenant_id = ('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid AND t.id = c.tenant_id
  RETURNING c.last_number, t.ticket_prefix
), written AS (
  INSERT INTO tickets (tenant_id, id, number, prefix, title, description, type, catalog_item,
                       workflow, status, status_category, priority, requester_id)
  SELECT ('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid, gen_random_uuid(), counter.last_number,
         counter.ticket_prefix, 'Printer on fire',
         'The printer on the third floor is on fire again.', 'incident', 'itsm_incident',
         'itsm_default', 'open', 'initial', 'HIGH', ('00000000-0000-4000-9000-' || lpad(:t::text, 12, '0'))::uuid
  FROM counter
  RETURNING tenant_id, id, requester_id, assignee_id
), events AS (
  INSERT INTO ticket_events (tenant_id, ticket_id, kind, actor_id, data)
  SELECT w.tenant_id, w.id, 'created', w.requester_id,
         '{"status": "open", "priority": "HIGH", "catalog_item": "itsm_incident"}'::jsonb
  FROM written w
), messages AS (
  INSERT INTO outbox (tenant_id, topic, payload)
  SELECT w.tenant_id, 'ticket.created', jsonb_build_object('actor_id', w.requester_id)
  FROM written w
)
SELECT w.id, r.name AS requester_name, a.name AS assignee_name
FROM written w
JOIN users r ON r.tenant_id = w.tenant_id AND r.id = w.requester_id
LEFT JOIN users a ON a.tenant_id = w.tenant_id AND a.id = w.assignee_id;
