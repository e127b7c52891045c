-- flowdesk's transition as the reference app sends it (optimistic, autocommitted): read the
-- ticket's status and version, then one statement that moves it (in_progress <-> resolved) if
-- the version is unchanged, inserts the event and the outbox messages (status_changed, and
-- resolved when it is) and returns it with the names. Each client owns :per_client tickets
-- (-D per_client=N) seeded in_progress with deterministic ids; ticket k is in tenant
-- k % :ntenants. No two clients share a ticket.
\set k :client_id * :per_client + random(0, :per_client - 1)
\set t :k % :ntenants
SELECT status AS cur, version AS v FROM tickets
  WHERE tenant_id = ('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid
    AND id = ('00000000-0000-4000-a000-' || lpad(:k::text, 12, '0'))::uuid \gset
WITH written AS (
  UPDATE tickets
  SET status = CASE WHEN :cur::text = 'in_progress' THEN 'resolved' ELSE 'in_progress' END,
      status_category = 'active', previous_status = status,
      version = version + 1, updated_at = now()
  WHERE tenant_id = ('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid
    AND id = ('00000000-0000-4000-a000-' || lpad(:k::text, 12, '0'))::uuid AND version = :v::int
  RETURNING tenant_id, id, status, requester_id, assignee_id
), events AS (
  INSERT INTO ticket_events (tenant_id, ticket_id, kind, actor_id, data)
  SELECT w.tenant_id, w.id, 'transitioned', ('00000000-0000-4000-9000-' || lpad(:t::text, 12, '0'))::uuid,
         jsonb_build_object('from', :cur::text, 'to', w.status)
  FROM written w
), messages AS (
  INSERT INTO outbox (tenant_id, topic, payload)
  SELECT w.tenant_id, m.topic, jsonb_build_object('from', :cur::text, 'to', w.status)
  FROM written w, (VALUES ('ticket.status_changed'), ('ticket.resolved')) AS m(topic)
  WHERE m.topic = 'ticket.status_changed' OR w.status = 'resolved'
)
SELECT w.id, r.name AS requester_name, a.name AS assignee_name
FROM written w
JOIN users r ON r.tenant_id = w.tenant_id AND r.id = w.requester_id
LEFT JOIN users a ON a.tenant_id = w.tenant_id AND a.id = w.assignee_id;
