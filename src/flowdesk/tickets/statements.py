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
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    CTE,
    Boolean,
    ColumnElement,
    FromClause,
    Integer,
    Interval,
    Select,
    String,
    Table,
    Text,
    Uuid,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    tuple_,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.sql.selectable import Subquery

from flowdesk.db.like import ESCAPE
from flowdesk.db.query import Query
from flowdesk.models import (
    asset_movements,
    assets,
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
from flowdesk.tickets.sla_statements import clock_changes, clocks_json
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


def with_names(written: FromClause) -> Select[Any]:
    """The tickets' rows with the names of their requester and assignee and a summary of
    their asset and movement: one statement reads or writes a ticket (or a page of them) and
    answers with everything its JSON shows."""
    r, a = users.alias("r"), users.alias("a")
    s, m = assets.alias("s"), asset_movements.alias("m")
    return select(
        *written.c,
        r.c.name.label("requester_name"),
        a.c.name.label("assignee_name"),
        s.c.external_ref.label("asset_external_ref"),
        s.c.tag.label("asset_tag"),
        s.c.name.label("asset_name"),
        s.c.type.label("asset_type"),
        s.c.deleted_at.label("asset_deleted_at"),
        m.c.from_location.label("movement_from"),
        m.c.to_location.label("movement_to"),
        m.c.moved_at.label("movement_moved_at"),
        clocks_json(written.c.tenant_id, written.c.id),
    ).select_from(
        written.join(
            r, and_(r.c.tenant_id == written.c.tenant_id, r.c.id == written.c.requester_id)
        )
        .outerjoin(a, and_(a.c.tenant_id == written.c.tenant_id, a.c.id == written.c.assignee_id))
        .outerjoin(s, and_(s.c.tenant_id == written.c.tenant_id, s.c.id == written.c.asset_id))
        .outerjoin(m, and_(m.c.tenant_id == written.c.tenant_id, m.c.id == written.c.movement_id))
    )


def lifecycle_value(column: str, name: str) -> ColumnElement[Any]:
    """The value a write gives a lifecycle column (flowdesk.tickets.lifecycle): the moments
    are the statement's now() or NULL, the timer now() plus the status's timeout."""
    if column == "timer_due_at":
        return func.now() + bindparam(name, type_=Interval)
    return case((bindparam(name, type_=Boolean), func.now()), else_=null())


LIFECYCLE_COLUMNS = frozenset({"started_at", "resolved_at", "closed_at", "timer_due_at"})


def _audited_select(written: CTE, final: Select[Any]) -> Query:
    events, messages = _audited(written)
    return Query(final.add_cte(events).add_cte(messages))


def audited(written: CTE, final: Select[Any]) -> Query:
    """`final`, with the events and messages of the change `written` (whose rows carry the
    ticket's `tenant_id` and `id`): for the writes that hang off a ticket in other packages
    (flowdesk.attachments), so that they are audited as the ticket's own are."""
    return _audited_select(written, final)


# --- reading a ticket ------------------------------------------------------------------------


def _get(key: ColumnElement[bool]) -> Query:
    written = (
        select(*TICKET_COLUMNS)
        .where(tickets.c.tenant_id == _tenant, key, _visible())
        .cte("written")
    )
    return Query(with_names(written))


GET_BY_ID = _get(tickets.c.id == _ticket)
GET_BY_NUMBER = _get(
    and_(
        tickets.c.number == bindparam("number", type_=tickets.c.number.type),
        tickets.c.prefix == bindparam("prefix", type_=String),
    )
)

# --- creating a ticket -----------------------------------------------------------------------


def _linked_asset() -> Select[Any]:
    """One row when the asset and movement a new ticket links (either may be NULL) are live
    and belong together, none otherwise. The asset's row is held FOR SHARE until the ticket
    is written, so a concurrent delete either waits for it (and then sees an open ticket) or
    goes first (and this finds no live asset): never an open ticket on a deleted asset."""
    asset_id = bindparam("asset_id", type_=Uuid)
    movement_id = bindparam("movement_id", type_=Uuid)
    live_asset = (
        select(assets.c.id)
        .where(
            assets.c.tenant_id == _tenant, assets.c.id == asset_id, assets.c.deleted_at.is_(None)
        )
        .with_for_update(read=True)
        .scalar_subquery()
    )
    movement_of = (
        select(asset_movements.c.asset_id)
        .where(asset_movements.c.tenant_id == _tenant, asset_movements.c.id == movement_id)
        .scalar_subquery()
    )
    return select(asset_id.label("asset_id"), movement_id.label("movement_id")).where(
        or_(asset_id.is_(None), live_asset.is_not(None)),
        or_(
            movement_id.is_(None),
            and_(
                movement_of.is_not(None),
                or_(asset_id.is_(None), movement_of == asset_id),
            ),
        ),
    )


def _create(*, with_sla: bool = False) -> Query:
    """The insert of a ticket; `with_sla`: with the SLA clocks its status starts (`sla`)."""
    requester_id = bindparam("requester_id", type_=Uuid)
    requester = (
        select(users.c.id)
        .where(
            users.c.tenant_id == _tenant, users.c.id == requester_id, users.c.deleted_at.is_(None)
        )
        .cte("requester")
    )
    linked = _linked_asset().cte("linked")
    # The number is taken only for a live requester and a live asset (when one is linked),
    # so a refused create takes none (no gap).
    counter = (
        update(ticket_counters)
        .values(last_number=ticket_counters.c.last_number + 1)
        .where(
            ticket_counters.c.tenant_id == _tenant,
            requester.c.id.is_not(None),
            select(linked.c.asset_id).exists(),
        )
        .returning(ticket_counters.c.last_number)
        .cte("counter")
    )
    given = ("title", "description", "type", "catalog_item", "workflow", "status")
    lifecycle = sorted(LIFECYCLE_COLUMNS)
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
                "answers",
                "asset_id",
                "movement_id",
                *lifecycle,
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
                bindparam("answers", type_=JSONB),
                linked.c.asset_id,
                linked.c.movement_id,
                *(lifecycle_value(c, c) for c in lifecycle),
            ).select_from(
                counter.join(tenants, tenants.c.id == _tenant).join(linked, literal(True))
            ),
        )
        .returning(*TICKET_COLUMNS)
        .cte("written")
    )
    # The approvals its filing gives (a manager filing for a report: flowdesk.tickets.approvals).
    filed = insert(ticket_approvals).from_select(
        ["tenant_id", "ticket_id", "name", "approver_id"],
        select(
            written.c.tenant_id,
            written.c.id,
            func.unnest(bindparam("filed_approvals", type_=ARRAY(Text))),
            _actor,
        ),
    )
    final = with_names(written).add_cte(filed.cte("filed"))
    if with_sla:
        final = final.add_cte(*clock_changes(written, "sla"))
    return _audited_select(written, final)


CREATE = _create()
CREATE_WITH_SLA = _create(with_sla=True)
# A ticket's SLA clocks, read again after a write that moved them.
CLOCKS = Query(select(clocks_json(_tenant, _ticket)))

# What a new ticket's asset links name: whether the asset is live (NULL: no such asset), and
# the asset of the movement (NULL: no such movement).
LINK_TARGETS = Query(
    select(
        select(assets.c.deleted_at.is_(None))
        .where(assets.c.tenant_id == _tenant, assets.c.id == bindparam("asset_id", type_=Uuid))
        .scalar_subquery()
        .label("asset_live"),
        select(asset_movements.c.asset_id)
        .where(
            asset_movements.c.tenant_id == _tenant,
            asset_movements.c.id == bindparam("movement_id", type_=Uuid),
        )
        .scalar_subquery()
        .label("movement_asset_id"),
    )
)

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
        *LIFECYCLE_COLUMNS,
        "sla",  # not a column: the SLA clock operations of the change
    }
)


def update_statement(columns: Sequence[str], *, clears_approvals: bool = False) -> Query:
    """The optimistic update of these columns: it applies only while the ticket is still at
    the version the decision was made on. An optional comment is added with it; with
    `clears_approvals`, the approvals named `cleared_approvals` are deleted with it (an action
    an approval policy is `cleared_by`)."""
    assert UPDATABLE.issuperset(columns), columns
    values: dict[str, Any] = {
        c: lifecycle_value(c, f"set_{c}")
        if c in LIFECYCLE_COLUMNS
        else bindparam(f"set_{c}", type_=tickets.c[c].type)
        for c in columns
        if c != "sla"
    }
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
    final = with_names(written).add_cte(comment.cte("comment"))
    if "sla" in columns:
        # The SLA clocks the change moves (flowdesk.tickets.sla), in its statement.
        final = final.add_cte(*clock_changes(written, "set_sla"))
    if clears_approvals:
        cleared = delete(ticket_approvals).where(
            ticket_approvals.c.tenant_id == _tenant,
            ticket_approvals.c.ticket_id == _ticket,
            ticket_approvals.c.name == func.any(bindparam("cleared_approvals", type_=ARRAY(Text))),
            select(written.c.id).exists(),
        )
        final = final.add_cte(cleared.cte("cleared"))
    return _audited_select(written, final)


# --- comments, the audit trail ---------------------------------------------------------------


def _still_in_status() -> CTE:
    """The ticket while it is still in the status the decision was made on, held FOR SHARE
    until the write commits. Comments, links and approvals do not move a ticket's version,
    so this is what keeps them off a ticket closed meanwhile: a concurrent close either waits
    for the write, or goes first and this finds no row (and the write adds nothing)."""
    return (
        select(tickets.c.tenant_id, tickets.c.id)
        .where(
            tickets.c.tenant_id == _tenant,
            tickets.c.id == _ticket,
            tickets.c.status == bindparam("status", type_=String),
        )
        .with_for_update(read=True)
        .cte("ticket")
    )


def _add_comment() -> Query:
    ticket = _still_in_status()
    added = (
        insert(ticket_comments)
        .from_select(
            ["tenant_id", "id", "ticket_id", "author_id", "body", "visibility"],
            select(
                ticket.c.tenant_id,
                bindparam("comment_id", type_=Uuid),
                ticket.c.id,
                _actor,
                bindparam("body", type_=Text),
                bindparam("visibility", type_=String),
            ),
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


def _history_page(
    table: Table, key: tuple[ColumnElement[Any], ...], after: ColumnElement[bool]
) -> Subquery:
    """One page of a ticket's comments or events, chosen from `table` alone in `key` order
    after the cursor, which is always a bound: the index (tenant_id, ticket_id, …) is read
    from the cursor on. Events' index is in their key's order, so a page of events reads a
    page however long the trail (the growth benchmark's 1,000-event ticket); comments' lacks
    the id, so they read on to the last comment and sort. With the names joined at the same
    level and a cursor that could be null, PostgreSQL read and sorted the ticket's whole
    history for every page."""
    return (
        select(table)
        .where(
            table.c.tenant_id == _tenant,
            table.c.ticket_id == _ticket,
            or_(~_external_only, table.c.visibility == "external"),
            after,
        )
        .order_by(*key)
        .limit(_limit)
        .subquery("page")
    )


def _comments() -> Query:
    c = ticket_comments.c
    # The first page starts after the smallest key there is (repository.FIRST_KEY_TIME).
    after = tuple_(c.created_at, c.id) > tuple_(
        bindparam("after_time", type_=c.created_at.type), bindparam("after_id", type_=Uuid)
    )
    page = _history_page(ticket_comments, (c.created_at, c.id), after)
    return Query(
        select(
            page.c.id,
            page.c.author_id,
            page.c.body,
            page.c.visibility,
            page.c.created_at,
            users.c.name.label("author_name"),
        )
        .join_from(
            page, users, and_(users.c.tenant_id == page.c.tenant_id, users.c.id == page.c.author_id)
        )
        .order_by(page.c.created_at, page.c.id)
    )


def _events() -> Query:
    e = ticket_events.c
    # The first page starts after id 0 (ids start at 1).
    after = e.id > bindparam("after", type_=e.id.type)
    page = _history_page(ticket_events, (e.id,), after)
    return Query(
        select(
            page.c.id,
            page.c.kind,
            page.c.actor_id,
            page.c.data,
            page.c.created_at,
            users.c.name.label("actor_name"),
        )
        .outerjoin_from(
            page, users, and_(users.c.tenant_id == page.c.tenant_id, users.c.id == page.c.actor_id)
        )
        .order_by(page.c.id)
    )


COMMENTS = _comments()
EVENTS = _events()

# --- people ----------------------------------------------------------------------------------


def _holds_agent_rights(user_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """The user is in a group granting tickets:manage (or admin, which implies it): with
    `deleted_at IS NULL`, the one meaning of "an agent" that assignment checks (IS_AGENT)
    and the list of whom a ticket can be assigned to (AGENTS) share."""
    return (
        select(literal(1))
        .select_from(group_members)
        .join(
            groups,
            and_(
                groups.c.tenant_id == group_members.c.tenant_id,
                groups.c.id == group_members.c.group_id,
            ),
        )
        .where(
            group_members.c.tenant_id == _tenant,
            group_members.c.user_id == user_id,
            groups.c.permissions.overlap(
                literal([TICKETS_MANAGE, ADMIN], groups.c.permissions.type)
            ),
        )
        .exists()
    )


# A live user whose groups grant tickets:manage (or admin, which implies it).
IS_AGENT = Query(
    select(literal(1)).where(
        users.c.tenant_id == _tenant,
        users.c.id == bindparam("user_id", type_=Uuid),
        users.c.deleted_at.is_(None),
        _holds_agent_rights(users.c.id),
    )
)

# The tenant's agents by name, those whose name or e-mail matches `pattern` (a LIKE pattern,
# flowdesk.db.like, or NULL for all), after the (name, id) of the previous page's last.
_pattern = bindparam("pattern", type_=Text)
_after_name = bindparam("after_name", type_=users.c.name.type)
_after_id = bindparam("after_id", type_=Uuid)
AGENTS = Query(
    select(users.c.id, users.c.name, users.c.email)
    .where(
        users.c.tenant_id == _tenant,
        users.c.deleted_at.is_(None),
        _holds_agent_rights(users.c.id),
        or_(
            _pattern.is_(None),
            users.c.name.ilike(_pattern, escape=ESCAPE),
            users.c.email.ilike(_pattern, escape=ESCAPE),
        ),
        or_(_after_id.is_(None), tuple_(users.c.name, users.c.id) > tuple_(_after_name, _after_id)),
    )
    .order_by(users.c.name, users.c.id)
    .limit(_limit)
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
# How many comments an author added to the ticket in the last minute (the per-minute bound of
# flowdesk.tickets.activity; the (tenant, ticket, created_at) index answers it).
RECENT_COMMENTS = Query(
    select(func.count())
    .select_from(ticket_comments)
    .where(
        ticket_comments.c.tenant_id == _tenant,
        ticket_comments.c.ticket_id == _ticket,
        ticket_comments.c.created_at > func.now() - literal(timedelta(minutes=1), Interval),
        ticket_comments.c.author_id == bindparam("author_id", type_=Uuid),
    )
)

APPROVAL_NAMES = Query(
    select(ticket_approvals.c.name)
    .distinct()
    .where(ticket_approvals.c.tenant_id == _tenant, ticket_approvals.c.ticket_id == _ticket)
)

_target = tickets.alias("target")
_LINKS = (
    select(
        ticket_links.c.id,
        ticket_links.c.kind,
        ticket_links.c.target_id,
        ticket_links.c.created_at,
        _target.c.prefix.label("target_prefix"),
        _target.c.number.label("target_number"),
        _target.c.requester_id.label("target_requester_id"),
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
LINKS = Query(_LINKS)
# A page of them: `limit` rows after (`after_at`, `after_id`) in that order (the first page
# starts after the smallest key there is).
LINKS_PAGE = Query(
    _LINKS.where(
        tuple_(ticket_links.c.created_at, ticket_links.c.id)
        > tuple_(
            bindparam("after_at", type_=ticket_links.c.created_at.type),
            bindparam("after_id", type_=Uuid),
        )
    ).limit(bindparam("limit", type_=Integer))
)


def _add_link() -> Query:
    # An existing identical link inserts nothing, and so records nothing.
    ticket = _still_in_status()
    written = (
        insert(ticket_links)
        .from_select(
            ["tenant_id", "ticket_id", "kind", "target_id"],
            select(
                ticket.c.tenant_id,
                ticket.c.id,
                bindparam("kind", type_=String),
                bindparam("target_id", type_=Uuid),
            ),
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


def _delete_of_ticket(table: Table, id_param: str) -> Query:
    """Delete the row `id_param` of the ticket's rows in `table` (a link, an approval), while
    the ticket is still in its status, with its audit event."""
    ticket = _still_in_status()
    written = (
        delete(table)
        .where(
            table.c.tenant_id == _tenant,
            table.c.ticket_id == _ticket,
            table.c.id == bindparam(id_param, type_=Uuid),
            select(ticket.c.id).exists(),
        )
        .returning(table.c.tenant_id, table.c.ticket_id.label("id"))
        .cte("written")
    )
    return _audited_select(written, select(written.c.id))


DELETE_LINK = _delete_of_ticket(ticket_links, "link_id")


def _add_approval() -> Query:
    ticket = _still_in_status()
    written = (
        insert(ticket_approvals)
        .from_select(
            ["tenant_id", "ticket_id", "name", "approver_id"],
            select(ticket.c.tenant_id, ticket.c.id, bindparam("name", type_=String), _actor),
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


DELETE_APPROVAL = _delete_of_ticket(ticket_approvals, "approval_id")

# What an approval policy asks of a would-be approver (a live user): their e-mail, their
# groups' names, and whether they are the requester's manager.
_approver_id = bindparam("approver_id", type_=Uuid)
_requester_user = users.alias("requester_user")
APPROVER = Query(
    select(
        users.c.email,
        select(_requester_user.c.manager_id)
        .where(
            _requester_user.c.tenant_id == _tenant,
            _requester_user.c.id == bindparam("requester_id", type_=Uuid),
        )
        .scalar_subquery()
        .label("requester_manager_id"),
        select(func.array_agg(groups.c.name))
        .select_from(
            group_members.join(
                groups,
                and_(
                    groups.c.tenant_id == group_members.c.tenant_id,
                    groups.c.id == group_members.c.group_id,
                ),
            )
        )
        .where(group_members.c.tenant_id == _tenant, group_members.c.user_id == _approver_id)
        .scalar_subquery()
        .label("groups"),
    ).where(users.c.tenant_id == _tenant, users.c.id == _approver_id, users.c.deleted_at.is_(None))
)

_APPROVALS = (
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
APPROVALS = Query(_APPROVALS)
# A page of them, as LINKS_PAGE.
APPROVALS_PAGE = Query(
    _APPROVALS.where(
        tuple_(ticket_approvals.c.created_at, ticket_approvals.c.id)
        > tuple_(
            bindparam("after_at", type_=ticket_approvals.c.created_at.type),
            bindparam("after_id", type_=Uuid),
        )
    ).limit(bindparam("limit", type_=Integer))
)
