"""The SQL text of the ticket repository (flowdesk.tickets.repository), as raw asyncpg
statements with named parameters (flowdesk.db.sql)."""

from __future__ import annotations

from collections.abc import Sequence

from flowdesk.db.sql import Statement

TICKET_COLUMNS = (
    "tenant_id, id, number, prefix, title, description, type, catalog_item, workflow, status, "
    "status_category, previous_status, priority, priority_rank, requester_id, assignee_id, "
    "resolution, fields, version, created_at, updated_at"
)

# The names of the people on the ticket come with it, so a read or a write is one statement.
_WITH_NAMES = """
SELECT w.*, r.name AS requester_name, a.name AS assignee_name
FROM written w
JOIN users r ON r.tenant_id = w.tenant_id AND r.id = w.requester_id
LEFT JOIN users a ON a.tenant_id = w.tenant_id AND a.id = w.assignee_id
"""

# Events and outbox messages travel as JSON arrays and are unnested in the statement, so any
# number of them costs nothing extra. Outbox payloads always carry the ticket's id.
_EVENTS_AND_OUTBOX = """
, events AS (
    INSERT INTO ticket_events (tenant_id, ticket_id, kind, actor_id, visibility, data)
    SELECT w.tenant_id, w.id, e->>'kind', :actor_id::uuid,
           coalesce(e->>'visibility', 'external'), coalesce(e->'data', '{}'::jsonb)
    FROM written w, jsonb_array_elements(:events::jsonb) AS e
), messages AS (
    INSERT INTO outbox (tenant_id, topic, payload)
    SELECT w.tenant_id, m->>'topic',
           coalesce(m->'payload', '{}'::jsonb) || jsonb_build_object('ticket_id', w.id)
    FROM written w, jsonb_array_elements(:outbox::jsonb) AS m
)
"""

_GET = (
    """
WITH written AS (
    SELECT {columns} FROM tickets
    WHERE tenant_id = :tenant_id AND {key}
      AND (:requester_only::uuid IS NULL OR requester_id = :requester_only::uuid)
)
"""
    + _WITH_NAMES
)
GET_BY_ID = Statement(_GET.format(columns=TICKET_COLUMNS, key="id = :id::uuid"))
GET_BY_NUMBER = Statement(
    _GET.format(columns=TICKET_COLUMNS, key="number = :number AND prefix = :prefix")
)

CREATE = Statement(
    f"""
WITH requester AS (
    SELECT u.id FROM users u
    WHERE u.tenant_id = :tenant_id::uuid AND u.id = :requester_id::uuid AND u.deleted_at IS NULL
), counter AS (
    -- Taken only for a live requester, so a refused create takes no number (no gap).
    UPDATE ticket_counters c SET last_number = c.last_number + 1
    FROM requester WHERE c.tenant_id = :tenant_id::uuid
    RETURNING c.last_number
), written AS (
    INSERT INTO tickets (tenant_id, id, number, prefix, title, description, type, catalog_item,
                         workflow, status, status_category, priority, requester_id, fields)
    SELECT :tenant_id::uuid, gen_random_uuid(), counter.last_number, t.ticket_prefix, :title::text,
           :description::text, :type::text, :catalog_item::text, :workflow::text, :status::text,
           :status_category::text, :priority::text, :requester_id::uuid, :fields::jsonb
    FROM counter JOIN tenants t ON t.id = :tenant_id::uuid
    RETURNING {TICKET_COLUMNS}
)
{_EVENTS_AND_OUTBOX}
{_WITH_NAMES}
"""
)

# Columns an update may set: the SET clause is built from these names only.
UPDATABLE = {
    "title": "text",
    "description": "text",
    "priority": "text",
    "fields": "jsonb",
    "assignee_id": "uuid",
    "catalog_item": "text",
    "type": "text",
    "workflow": "text",
    "status": "text",
    "status_category": "text",
    "previous_status": "text",
    "resolution": "text",
}


def update_statement(columns: Sequence[str]) -> Statement:
    """The optimistic update of these columns (built once per set of columns, then cached)."""
    assignments = ", ".join(f"{c} = :{c}::{UPDATABLE[c]}" for c in columns)
    return Statement(
        f"""
WITH written AS (
    UPDATE tickets SET {assignments}, version = version + 1, updated_at = now()
    WHERE tenant_id = :tenant_id::uuid AND id = :id::uuid AND version = :version::int
    RETURNING {TICKET_COLUMNS}
), comment AS (
    INSERT INTO ticket_comments (tenant_id, id, ticket_id, author_id, body, visibility)
    SELECT w.tenant_id, :comment_id::uuid, w.id, :actor_id::uuid, :comment_body::text,
           :comment_visibility::text
    FROM written w WHERE :comment_body::text IS NOT NULL
)
{_EVENTS_AND_OUTBOX}
{_WITH_NAMES}
"""
    )


APPEND = Statement(
    "WITH written AS (SELECT :tenant_id::uuid AS tenant_id, :id::uuid AS id)"
    + _EVENTS_AND_OUTBOX
    + "SELECT 1"
)

ADD_COMMENT = Statement(
    """
WITH written AS (SELECT :tenant_id::uuid AS tenant_id, :id::uuid AS id),
c AS (
    INSERT INTO ticket_comments (tenant_id, id, ticket_id, author_id, body, visibility)
    VALUES (:tenant_id::uuid, :comment_id::uuid, :id::uuid, :actor_id::uuid, :body::text,
            :visibility::text)
    RETURNING id, author_id, body, visibility, created_at
)"""
    + _EVENTS_AND_OUTBOX
    + """
SELECT c.*, u.name AS author_name FROM c
JOIN users u ON u.tenant_id = :tenant_id::uuid AND u.id = c.author_id
"""
)

COMMENTS = Statement(
    """
SELECT c.id, c.author_id, c.body, c.visibility, c.created_at, u.name AS author_name
FROM ticket_comments c JOIN users u ON u.tenant_id = c.tenant_id AND u.id = c.author_id
WHERE c.tenant_id = :tenant_id::uuid AND c.ticket_id = :id::uuid
  AND (NOT :external_only::bool OR c.visibility = 'external')
  AND (:after_time::timestamptz IS NULL OR (c.created_at, c.id) > (:after_time, :after_id::uuid))
ORDER BY c.created_at, c.id LIMIT :limit::int
"""
)

EVENTS = Statement(
    """
SELECT e.id, e.kind, e.actor_id, e.data, e.created_at, u.name AS actor_name
FROM ticket_events e LEFT JOIN users u ON u.tenant_id = e.tenant_id AND u.id = e.actor_id
WHERE e.tenant_id = :tenant_id::uuid AND e.ticket_id = :id::uuid
  AND (NOT :external_only::bool OR e.visibility = 'external')
  AND (:after::bigint IS NULL OR e.id > :after::bigint)
ORDER BY e.id LIMIT :limit::int
"""
)

IS_AGENT = Statement(
    """
SELECT 1 FROM group_members m
JOIN groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
JOIN users u ON u.tenant_id = m.tenant_id AND u.id = m.user_id
WHERE m.tenant_id = :tenant_id::uuid AND m.user_id = :user_id::uuid AND u.deleted_at IS NULL
  AND g.permissions && ARRAY['tickets:manage', 'admin']::text[]
LIMIT 1
"""
)

LINK_KINDS = Statement(
    "SELECT DISTINCT kind FROM ticket_links "
    "WHERE tenant_id = :tenant_id::uuid AND ticket_id = :id::uuid"
)
APPROVAL_NAMES = Statement(
    "SELECT DISTINCT name FROM ticket_approvals "
    "WHERE tenant_id = :tenant_id::uuid AND ticket_id = :id::uuid"
)
LINKS = Statement(
    """
SELECT l.id, l.kind, l.target_id, l.created_at, t.prefix AS target_prefix,
       t.number AS target_number
FROM ticket_links l JOIN tickets t ON t.tenant_id = l.tenant_id AND t.id = l.target_id
WHERE l.tenant_id = :tenant_id::uuid AND l.ticket_id = :id::uuid
ORDER BY l.created_at, l.id
"""
)
ADD_LINK = Statement(
    """
INSERT INTO ticket_links (tenant_id, id, ticket_id, kind, target_id)
VALUES (:tenant_id::uuid, :link_id::uuid, :id::uuid, :kind::text, :target_id::uuid)
ON CONFLICT DO NOTHING RETURNING id
"""
)
DELETE_LINK = Statement(
    """
DELETE FROM ticket_links
WHERE tenant_id = :tenant_id::uuid AND ticket_id = :id::uuid AND id = :link_id::uuid
RETURNING kind, target_id
"""
)
ADD_APPROVAL = Statement(
    """
WITH a AS (
    INSERT INTO ticket_approvals (tenant_id, id, ticket_id, name, approver_id)
    VALUES (:tenant_id::uuid, :approval_id::uuid, :id::uuid, :name::text, :approver_id::uuid)
    RETURNING id, name, approver_id, created_at
)
SELECT a.*, u.name AS approver_name FROM a
JOIN users u ON u.tenant_id = :tenant_id::uuid AND u.id = a.approver_id
"""
)
APPROVALS = Statement(
    """
SELECT a.id, a.name, a.approver_id, a.created_at, u.name AS approver_name
FROM ticket_approvals a JOIN users u ON u.tenant_id = a.tenant_id AND u.id = a.approver_id
WHERE a.tenant_id = :tenant_id::uuid AND a.ticket_id = :id::uuid
ORDER BY a.created_at, a.id
"""
)
