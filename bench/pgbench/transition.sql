-- flowdesk's transition: lock the ticket row, update it (in_progress <-> resolved), insert
-- the event and the outbox messages (status_changed; resolved when it is). Each client owns
-- :per_client tickets (-D per_client=N) seeded in_progress with deterministic ids; ticket k is
-- in tenant k % :ntenants. No two clients share a ticket.
\set k :client_id * :per_client + random(0, :per_client - 1)
\set t :k % :ntenants
BEGIN;
SELECT status AS cur FROM tickets WHERE tenant_id = ('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid AND id = ('00000000-0000-4000-a000-' || lpad(:k::text, 12, '0'))::uuid FOR UPDATE \gset
UPDATE tickets
  SET status = CASE WHEN :cur::text = 'in_progress' THEN 'resolved' ELSE 'in_progress' END,
      status_category = 'active', previous_status = status,
      version = version + 1, updated_at = now()
  WHERE tenant_id = ('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid AND id = ('00000000-0000-4000-a000-' || lpad(:k::text, 12, '0'))::uuid;
INSERT INTO ticket_events (tenant_id, ticket_id, kind, actor_id, data)
  VALUES (('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid, ('00000000-0000-4000-a000-' || lpad(:k::text, 12, '0'))::uuid, 'transitioned', ('00000000-0000-4000-9000-' || lpad(:t::text, 12, '0'))::uuid,
          '{"action": "resolve", "from": "in_progress", "to": "resolved"}');
INSERT INTO outbox (tenant_id, topic, payload)
  SELECT ('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid, v.topic,
         '{"from": "in_progress", "to": "resolved"}'::jsonb
  FROM (VALUES ('ticket.status_changed'), ('ticket.resolved')) AS v(topic)
  WHERE v.topic = 'ticket.status_changed' OR :cur::text = 'in_progress';
END;
