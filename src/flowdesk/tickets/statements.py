"""The statements of one ticket and what hangs off it, built with SQLAlchemy Core from the
tables in flowdesk.models and compiled once (flowdesk.db.query.Query).

Every write is one statement: the change itself is a CTE named `written` (whose rows carry the
ticket's `tenant_id` and `id`), and the audit events and outbox messages of the change are
inserted from it, so they exist exactly when the change does. Events and messages travel as
one JSON array each and are unnested in the statement: any number of them costs nothing
extra, and a change that wrote no row writes no event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    CTE,
    Boolean,
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    Uuid,
    and_,
    bindparam,
    delete,
    func,
    literal,
    or_,
    select,
    tuple_,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert

from flowdesk.db.query import Query
from flowdesk.models import (
    group_members,
    groups,
    outbox,
    tenants,
    ticket_approvals,
    ticket_comments,
    ticket_counters,
    ticket_events,
    ticket_links,
    tickets,
    users,
)
from flowdesk.vocabulary import ADMIN, TICKETS_MANAGE

# Every column but the full-text vector: reading it back costs more than all the others.
TICKET_COLUMNS = tuple(c for c in tickets.c if c.name != "search")

_tenant = bindparam("tenant_id", type_=Uuid)
_ticket = bindparam("id", type_=Uuid)
_actor = bindparam("actor_id", type_=Uuid)
# A desk user (no tickets:manage) reaches only the tickets they requested; None for agents.
_requester_only = bindparam("requester_only", type_=Uuid)


def _visible() -> ColumnElement[bool]:
    return or_(_requester_only.is_(None), tickets.c.requester_id == _requester_only)


def _audited(written: CTE) -> tuple[CTE, CTE]:
    """The CTEs that append the change's events and queue its messages, from `written`."""
    event = func.jsonb_array_elements(bindparam("events", type_=JSONB)).column_valued("e")
    e = type_coerce(event, JSONB)
    events = insert(ticket_events).from_select(
        ["tenant_id", "ticket_id", "kind", "actor_id", "visibility", "data"],
        select(
            written.c.tenant_id,
            written.c.id,
            e["kind"].astext,
            _actor,
            func.coalesce(e["visibility"].astext, literal("external", String)),
            func.coalesce(e["data"], literal({}, JSONB)),
        ),
    )
    message = func.jsonb_array_elements(bindparam("outbox", type_=JSONB)).column_valued("m")
    m = type_coerce(message, JSONB)
    # Every message carries the id of its ticket and who made the change (nobody is notified
    # of their own action).
    payload = func.coalesce(m["payload"], literal({}, JSONB)).op("||", return_type=JSONB)(
        func.jsonb_build_object(
            literal("ticket_id", String), written.c.id, literal("actor_id", String), _actor
        )
    )
    messages = insert(outbox).from_select(
        ["tenant_id", "topic", "payload"], select(written.c.tenant_id, m["topic"].astext, payload)
    )
    return events.cte("events"), messages.cte("messages")


def _with_names(written: CTE) -> Select[Any]:
    """The ticket's row with the names of its requester and assignee: one statement reads
    or writes a ticket and answers with everything its JSON shows."""
    r, a = users.alias("r"), users.alias("a")
    return select(
        *written.c, r.c.name.label("requester_name"), a.c.name.label("assignee_name")
    ).select_from(
        written.join(
            r, and_(r.c.tenant_id == written.c.tenant_id, r.c.id == written.c.requester_id)
        ).outerjoin(a, and_(a.c.tenant_id == written.c.tenant_id, a.c.id == written.c.assignee_id))
    )


def _audited_select(written: CTE, final: Select[Any]) -> Query:
    events, messages = _audited(written)
    return Query(final.add_cte(events).add_cte(messages))


# --- reading a ticket ------------------------------------------------------------------------


def _get(key: ColumnElement[bool]) -> Query:
    written = (
        select(*TICKET_COLUMNS)
        .where(tickets.c.tenant_id == _tenant, key, _visible())
        .cte("written")
    )
    return Query(_with_names(written))


GET_BY_ID = _get(tickets.c.id == _ticket)
GET_BY_NUMBER = _get(
    and_(
        tickets.c.number == bindparam("number", type_=tickets.c.number.type),
        tickets.c.prefix == bindparam("prefix", type_=String),
    )
)

# --- creating a ticket -----------------------------------------------------------------------


def _create() -> Query:
    requester_id = bindparam("requester_id", type_=Uuid)
    requester = (
        select(users.c.id)
        .where(
            users.c.tenant_id == _tenant, users.c.id == requester_id, users.c.deleted_at.is_(None)
        )
        .cte("requester")
    )
    # The number is taken only for a live requester, so a refused create takes none (no gap).
    counter = (
        update(ticket_counters)
        .values(last_number=ticket_counters.c.last_number + 1)
        .where(ticket_counters.c.tenant_id == _tenant, requester.c.id.is_not(None))
        .returning(ticket_counters.c.last_number)
        .cte("counter")
    )
    given = ("title", "description", "type", "catalog_item", "workflow", "status")
    written = (
        insert(tickets)
        .from_select(
            [
                "tenant_id",
                "number",
                "prefix",
                *given,
                "status_category",
                "priority",
                "requester_id",
                "fields",
            ],
            select(
                _tenant,
                counter.c.last_number,
                tenants.c.ticket_prefix,
                *(bindparam(name, type_=Text) for name in given),
                bindparam("status_category", type_=String),
                bindparam("priority", type_=String),
                requester_id,
                bindparam("fields", type_=JSONB),
            ).select_from(counter.join(tenants, tenants.c.id == _tenant)),
        )
        .returning(*TICKET_COLUMNS)
        .cte("written")
    )
    return _audited_select(written, _with_names(written))


CREATE = _create()

# --- updating a ticket -----------------------------------------------------------------------

# The columns an update may set. Their values are named `set_<column>`: SQLAlchemy reserves
# a column's own name for the values of an INSERT or UPDATE it builds.
UPDATABLE = frozenset(
    {
        "title",
        "description",
        "priority",
        "fields",
        "assignee_id",
        "catalog_item",
        "type",
        "workflow",
        "status",
        "status_category",
        "previous_status",
        "resolution",
    }
)


def update_statement(columns: Sequence[str]) -> Query:
    """The optimistic update of these columns: it applies only while the ticket is still at
    the version the decision was made on. An optional comment is added with it."""
    assert UPDATABLE.issuperset(columns), columns
    values: dict[str, Any] = {c: bindparam(f"set_{c}", type_=tickets.c[c].type) for c in columns}
    written = (
        update(tickets)
        .values(**values, version=tickets.c.version + 1, updated_at=func.now())
        .where(
            tickets.c.tenant_id == _tenant,
            tickets.c.id == _ticket,
            tickets.c.version == bindparam("version", type_=Integer),
        )
        .returning(*TICKET_COLUMNS)
        .cte("written")
    )
    body = bindparam("comment_body", type_=Text)
    comment = insert(ticket_comments).from_select(
        ["tenant_id", "id", "ticket_id", "author_id", "body", "visibility"],
        select(
            written.c.tenant_id,
            bindparam("comment_id", type_=Uuid),
            written.c.id,
            _actor,
            body,
            bindparam("comment_visibility", type_=String),
        ).where(body.is_not(None)),
    )
    return _audited_select(written, _with_names(written).add_cte(comment.cte("comment")))


# --- comments, the audit trail ---------------------------------------------------------------


def _add_comment() -> Query:
    added = (
        insert(ticket_comments)
        .values(
            tenant_id=_tenant,
            id=bindparam("comment_id", type_=Uuid),
            ticket_id=_ticket,
            author_id=_actor,
            body=bindparam("body", type_=Text),
            visibility=bindparam("visibility", type_=String),
        )
        .returning(
            ticket_comments.c.tenant_id,
            ticket_comments.c.ticket_id.label("id"),
            ticket_comments.c.id.label("comment_id"),
            ticket_comments.c.author_id,
            ticket_comments.c.body,
            ticket_comments.c.visibility,
            ticket_comments.c.created_at,
        )
        .cte("written")
    )
    final = select(
        added.c.comment_id.label("id"),
        added.c.author_id,
        added.c.body,
        added.c.visibility,
        added.c.created_at,
        users.c.name.label("author_name"),
    ).join_from(
        added, users, and_(users.c.tenant_id == added.c.tenant_id, users.c.id == added.c.author_id)
    )
    return _audited_select(added, final)


ADD_COMMENT = _add_comment()

_external_only = bindparam("external_only", type_=Boolean)
_limit = bindparam("limit", type_=Integer)

COMMENTS = Query(
    select(
        ticket_comments.c.id,
        ticket_comments.c.author_id,
        ticket_comments.c.body,
        ticket_comments.c.visibility,
        ticket_comments.c.created_at,
        users.c.name.label("author_name"),
    )
    .join_from(
        ticket_comments,
        users,
        and_(
            users.c.tenant_id == ticket_comments.c.tenant_id,
            users.c.id == ticket_comments.c.author_id,
        ),
    )
    .where(
        ticket_comments.c.tenant_id == _tenant,
        ticket_comments.c.ticket_id == _ticket,
        or_(~_external_only, ticket_comments.c.visibility == "external"),
        or_(
            bindparam("after_time", type_=ticket_comments.c.created_at.type).is_(None),
            tuple_(ticket_comments.c.created_at, ticket_comments.c.id)
            > tuple_(
                bindparam("after_time", type_=ticket_comments.c.created_at.type),
                bindparam("after_id", type_=Uuid),
            ),
        ),
    )
    .order_by(ticket_comments.c.created_at, ticket_comments.c.id)
    .limit(_limit)
)

EVENTS = Query(
    select(
        ticket_events.c.id,
        ticket_events.c.kind,
        ticket_events.c.actor_id,
        ticket_events.c.data,
        ticket_events.c.created_at,
        users.c.name.label("actor_name"),
    )
    .outerjoin_from(
        ticket_events,
        users,
        and_(
            users.c.tenant_id == ticket_events.c.tenant_id, users.c.id == ticket_events.c.actor_id
        ),
    )
    .where(
        ticket_events.c.tenant_id == _tenant,
        ticket_events.c.ticket_id == _ticket,
        or_(~_external_only, ticket_events.c.visibility == "external"),
        or_(
            bindparam("after", type_=ticket_events.c.id.type).is_(None),
            ticket_events.c.id > bindparam("after", type_=ticket_events.c.id.type),
        ),
    )
    .order_by(ticket_events.c.id)
    .limit(_limit)
)

# --- people ----------------------------------------------------------------------------------

# A live user whose groups grant tickets:manage (or admin, which implies it).
IS_AGENT = Query(
    select(literal(1))
    .select_from(group_members)
    .join(
        groups,
        and_(
            groups.c.tenant_id == group_members.c.tenant_id, groups.c.id == group_members.c.group_id
        ),
    )
    .join(
        users,
        and_(users.c.tenant_id == group_members.c.tenant_id, users.c.id == group_members.c.user_id),
    )
    .where(
        group_members.c.tenant_id == _tenant,
        group_members.c.user_id == bindparam("user_id", type_=Uuid),
        users.c.deleted_at.is_(None),
        groups.c.permissions.overlap(literal([TICKETS_MANAGE, ADMIN], groups.c.permissions.type)),
    )
    .limit(1)
)

# --- who a workflow's named owners are --------------------------------------------------------

# Each owner a workflow names (Trac's `set_owner = ann, qa-team`) matched against the tenant:
# a live user's e-mail, a user name no other live user has, or a group (its live members).
_wanted = (
    func.unnest(bindparam("names", type_=ARRAY(Text))).table_valued("name").render_derived(name="n")
)
_namesakes = users.alias("namesakes")


def _live_user(user_id: ColumnElement[Any]) -> ColumnElement[bool]:
    return and_(users.c.tenant_id == _tenant, users.c.id == user_id, users.c.deleted_at.is_(None))


OWNER_DIRECTORY = Query(
    union_all(
        select(_wanted.c.name, users.c.id.label("user_id")).select_from(
            _wanted.join(
                users,
                and_(
                    users.c.tenant_id == _tenant,
                    users.c.deleted_at.is_(None),
                    func.lower(users.c.email) == func.lower(_wanted.c.name),
                ),
            )
        ),
        select(_wanted.c.name, users.c.id)
        .select_from(
            _wanted.join(
                users,
                and_(
                    users.c.tenant_id == _tenant,
                    users.c.deleted_at.is_(None),
                    users.c.name == _wanted.c.name,
                ),
            )
        )
        .where(
            select(func.count())
            .where(
                _namesakes.c.tenant_id == _tenant,
                _namesakes.c.deleted_at.is_(None),
                _namesakes.c.name == _wanted.c.name,
            )
            .scalar_subquery()
            == 1
        ),
        select(_wanted.c.name, group_members.c.user_id).select_from(
            _wanted.join(
                groups, and_(groups.c.tenant_id == _tenant, groups.c.name == _wanted.c.name)
            )
            .join(
                group_members,
                and_(
                    group_members.c.tenant_id == groups.c.tenant_id,
                    group_members.c.group_id == groups.c.id,
                ),
            )
            .join(users, _live_user(group_members.c.user_id))
        ),
    )
)
# The live members of groups granting any of `grantors`, with their groups' permissions.
PERMISSION_HOLDERS = Query(
    select(group_members.c.user_id, groups.c.permissions)
    .select_from(
        group_members.join(
            groups,
            and_(
                groups.c.tenant_id == group_members.c.tenant_id,
                groups.c.id == group_members.c.group_id,
            ),
        ).join(users, _live_user(group_members.c.user_id))
    )
    .where(
        group_members.c.tenant_id == _tenant,
        groups.c.permissions.overlap(bindparam("grantors", type_=ARRAY(Text))),
    )
)

# --- links and approvals ---------------------------------------------------------------------

LINK_KINDS = Query(
    select(ticket_links.c.kind)
    .distinct()
    .where(ticket_links.c.tenant_id == _tenant, ticket_links.c.ticket_id == _ticket)
)
APPROVAL_NAMES = Query(
    select(ticket_approvals.c.name)
    .distinct()
    .where(ticket_approvals.c.tenant_id == _tenant, ticket_approvals.c.ticket_id == _ticket)
)

_target = tickets.alias("target")
LINKS = Query(
    select(
        ticket_links.c.id,
        ticket_links.c.kind,
        ticket_links.c.target_id,
        ticket_links.c.created_at,
        _target.c.prefix.label("target_prefix"),
        _target.c.number.label("target_number"),
    )
    .join_from(
        ticket_links,
        _target,
        and_(
            _target.c.tenant_id == ticket_links.c.tenant_id,
            _target.c.id == ticket_links.c.target_id,
        ),
    )
    .where(ticket_links.c.tenant_id == _tenant, ticket_links.c.ticket_id == _ticket)
    .order_by(ticket_links.c.created_at, ticket_links.c.id)
)


def _add_link() -> Query:
    # An existing identical link inserts nothing, and so records nothing.
    written = (
        insert(ticket_links)
        .values(
            tenant_id=_tenant,
            ticket_id=_ticket,
            kind=bindparam("kind", type_=String),
            target_id=bindparam("target_id", type_=Uuid),
        )
        .on_conflict_do_nothing()
        .returning(
            ticket_links.c.tenant_id,
            ticket_links.c.ticket_id.label("id"),
            ticket_links.c.id.label("link_id"),
        )
        .cte("written")
    )
    return _audited_select(written, select(written.c.link_id))


ADD_LINK = _add_link()


def _delete_link() -> Query:
    written = (
        delete(ticket_links)
        .where(
            ticket_links.c.tenant_id == _tenant,
            ticket_links.c.ticket_id == _ticket,
            ticket_links.c.id == bindparam("link_id", type_=Uuid),
        )
        .returning(ticket_links.c.tenant_id, ticket_links.c.ticket_id.label("id"))
        .cte("written")
    )
    return _audited_select(written, select(written.c.id))


DELETE_LINK = _delete_link()


def _add_approval() -> Query:
    written = (
        insert(ticket_approvals)
        .values(
            tenant_id=_tenant,
            ticket_id=_ticket,
            name=bindparam("name", type_=String),
            approver_id=_actor,
        )
        .returning(
            ticket_approvals.c.tenant_id,
            ticket_approvals.c.ticket_id.label("id"),
            ticket_approvals.c.id.label("approval_id"),
            ticket_approvals.c.name,
            ticket_approvals.c.approver_id,
            ticket_approvals.c.created_at,
        )
        .cte("written")
    )
    final = select(
        written.c.approval_id.label("id"),
        written.c.name,
        written.c.approver_id,
        written.c.created_at,
        users.c.name.label("approver_name"),
    ).join_from(
        written,
        users,
        and_(users.c.tenant_id == written.c.tenant_id, users.c.id == written.c.approver_id),
    )
    return _audited_select(written, final)


ADD_APPROVAL = _add_approval()

APPROVALS = Query(
    select(
        ticket_approvals.c.id,
        ticket_approvals.c.name,
        ticket_approvals.c.approver_id,
        ticket_approvals.c.created_at,
        users.c.name.label("approver_name"),
    )
    .join_from(
        ticket_approvals,
        users,
        and_(
            users.c.tenant_id == ticket_approvals.c.tenant_id,
            users.c.id == ticket_approvals.c.approver_id,
        ),
    )
    .where(ticket_approvals.c.tenant_id == _tenant, ticket_approvals.c.ticket_id == _ticket)
    .order_by(ticket_approvals.c.created_at, ticket_approvals.c.id)
)
