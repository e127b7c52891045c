"""Approval policies: who may give each approval a workflow's conditions name (`approvals:` at
the top of the catalog), who may not, and which actions clear them.

    approvals:
      - name: infra                      # what {approval: infra} conditions read
        label: "Platform approval (INFRA approvers)"
        given_by: {group: INFRA approvers}   # a group of the tenant, by name
        forbidden_roles: [assignee]      # the requester never approves their own request
        cleared_by: [back_to_review]     # these actions clear it, in their transition's write
      - name: manager
        given_by: manager                # the requester's manager (users.manager_id)
        filing_approves: true            # the manager's filing for a report approves it
      - name: cab
        given_by: [{user: cto@example.com}, {group: CAB}]   # any one of them

The engine only reads whether an approval is recorded; who may record one is the tickets
domain's check against these policies (flowdesk.tickets.approvals).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from yaml.nodes import Node, ScalarNode, SequenceNode

from .diagnostics import Pos, Sink
from .yamlnodes import boolean, check_keys, mapping, pos_of, scalar, string, string_list

APPROVER_KINDS = ("group", "manager", "user")
POLICY_KEYS = frozenset(
    {"name", "label", "given_by", "forbidden_roles", "cleared_by", "filing_approves"}
)
# The longest approval name (ticket_approvals.name).
NAME_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Approver:
    """Who may give an approval: `group` (its members; `name` is the group's), `manager`
    (the requester's manager), or `user` (`name` is their e-mail, in any case)."""

    kind: str
    name: str = ""

    def describe(self) -> str:
        if self.kind == "manager":
            return "the requester's manager"
        if self.kind == "group":
            return f"members of the group '{self.name}'"
        return self.name


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    name: str
    label: str
    given_by: tuple[Approver, ...]
    # Who may not give it although eligible: the requester always (nobody approves their
    # own request), the ticket's assignee when listed.
    forbidden_roles: tuple[str, ...] = ("requester",)
    # The actions whose transition clears it (seed 003: back to Review).
    cleared_by: tuple[str, ...] = ()
    # A request the requester's manager files for them counts as that manager's approval.
    filing_approves: bool = False
    pos: Pos | None = None

    @property
    def by_manager(self) -> bool:
        return any(a.kind == "manager" for a in self.given_by)

    def groups(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.given_by if a.kind == "group")

    def users(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.given_by if a.kind == "user")

    def eligible(self) -> str:
        """Who may give it, as a phrase for refusals."""
        return " or ".join(a.describe() for a in self.given_by)


def parse_policy(node: Node, sink: Sink) -> ApprovalPolicy | None:
    fields = mapping(node, sink, "approval")
    if fields is None:
        return None
    check_keys(fields, POLICY_KEYS, sink, "approval")
    pos = pos_of(node)
    if "name" not in fields or "given_by" not in fields:
        sink.error(pos, "approval: needs 'name' and 'given_by' (group, manager or user)")
        return None
    name = string(fields["name"][1], sink, "approval name")
    if name is not None and len(name) > NAME_LENGTH:
        sink.error(pos_of(fields["name"][1]), f"approval name longer than {NAME_LENGTH}")
        name = None
    label = name or ""
    if "label" in fields:
        label = string(fields["label"][1], sink, "label") or label
    given_by = _approvers(fields["given_by"][1], sink)
    forbidden = ["requester"]
    if "forbidden_roles" in fields:
        for role, rnode in string_list(fields["forbidden_roles"][1], sink, "forbidden_roles"):
            if role not in ("requester", "assignee"):
                sink.error(
                    pos_of(rnode),
                    f"unknown forbidden role '{role}' (expected assignee or requester)",
                )
            elif role not in forbidden:
                forbidden.append(role)
    cleared_by: tuple[str, ...] = ()
    if "cleared_by" in fields:
        cleared_by = tuple(v for v, _ in string_list(fields["cleared_by"][1], sink, "cleared_by"))
    filing = False
    if "filing_approves" in fields:
        filing = boolean(fields["filing_approves"][1], sink, "filing_approves")
        if filing and not any(a.kind == "manager" for a in given_by):
            sink.error(
                pos_of(fields["filing_approves"][0]),
                f"approval '{name}': filing_approves needs the requester's manager in given_by",
            )
    if name is None or not given_by:
        return None
    return ApprovalPolicy(name, label, given_by, tuple(forbidden), cleared_by, filing, pos)


def _approvers(node: Node, sink: Sink) -> tuple[Approver, ...]:
    """`manager`, {group: NAME}, {user: EMAIL}, or a list of them (any one may approve)."""
    items = list(node.value) if isinstance(node, SequenceNode) else [node]
    if not items:
        sink.error(pos_of(node), "given_by must name who may give the approval")
    return tuple(a for a in (_approver(item, sink) for item in items) if a is not None)


def _approver(node: Node, sink: Sink) -> Approver | None:
    expected = f"expected one of: {', '.join(APPROVER_KINDS)}"
    if isinstance(node, ScalarNode):
        value = scalar(node)
        if value == "manager":
            return Approver("manager")
        sink.error(pos_of(node), f"unknown approver kind '{value}' ({expected})")
        return None
    fields = mapping(node, sink, "given_by")
    if fields is None:
        return None
    if len(fields) != 1:
        sink.error(pos_of(node), "an approver is `manager`, {group: NAME} or {user: EMAIL}")
        return None
    ((kind, (knode, vnode)),) = fields.items()
    if kind not in ("group", "user"):
        sink.error(pos_of(knode), f"unknown approver kind '{kind}' ({expected})")
        return None
    name = string(vnode, sink, kind)
    return None if name is None else Approver(kind, name)


def check_policies(
    policies: Mapping[str, ApprovalPolicy],
    named: Iterable[tuple[str, Pos]],
    actions: frozenset[str],
    sink: Sink,
) -> None:
    """Every approval a condition names has a policy, and every action a policy is cleared by
    exists in some workflow (a typo would silently never clear it)."""
    for name, pos in named:
        if name not in policies:
            known = ", ".join(policies) or "none"
            sink.error(
                pos,
                f"unknown approval '{name}': declare who may give it under `approvals` "
                f"(declared: {known})",
            )
    for policy in policies.values():
        for action in policy.cleared_by:
            if action not in actions:
                sink.error(
                    policy.pos or Pos("<unknown>", 0, 0),
                    f"approval '{policy.name}': cleared_by names no action of any workflow: "
                    f"'{action}'",
                )
