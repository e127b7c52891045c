"""RT import: the orders lifecycle, rights wildcards with RT's precedence, status maps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowdesk.workflow import (
    Actor,
    ApplyInputs,
    Catalog,
    StatusMapMissing,
    TicketFacts,
    TransitionRefused,
    UnknownWorkflow,
    apply,
    available_actions,
    compile_catalog,
    load_catalog,
)
from flowdesk.workflow.importers import ImportProblem, dump_catalog, import_rt

from .conftest import REPO

ORDERS_JSON = REPO / "examples" / "rt-orders.json"
ORDERS_YAML = REPO / "examples" / "rt-orders.yaml"


@pytest.fixture(scope="module")
def orders() -> Catalog:
    return load_catalog([ORDERS_YAML], base=None)


def test_example_yaml_is_the_importers_output() -> None:
    doc, warnings = import_rt(json.loads(ORDERS_JSON.read_text()), "orders", str(ORDERS_JSON))
    text = dump_catalog(doc, ["Imported from rt-orders.json by `flowdesk workflows import-rt`."])
    assert ORDERS_YAML.read_text() == text
    assert warnings == [
        "lifecycle 'orders': 'deleted' is used but not listed: imported as inactive, hidden",
        "lifecycle 'orders': action 'pending -> delivered' is not an allowed transition: "
        "ignored (RT does not show it either)",
    ]


def test_statuses_categories_and_creation(orders: Catalog) -> None:
    wf = orders.workflow("orders")
    assert {s.name: s.category for s in wf.statuses.values()} == {
        "pending": "initial",
        "processing": "active",
        "delivery": "active",
        "delivered": "inactive",
        "returned": "inactive",
        "declined": "inactive",
        "deleted": "inactive",
    }
    assert wf.statuses["deleted"].hidden and not wf.statuses["pending"].hidden
    assert wf.default_create_status == "pending"
    assert sorted(wf.create_statuses) == ["declined", "pending", "processing"]
    creator = Actor("c", frozenset({"CreateTicket"}))
    assert all(o.allowed for o in available_actions(wf, TicketFacts(), creator))


def test_rights_most_specific_rule_wins(orders: Catalog) -> None:
    wf = orders.workflow("orders")
    modify = Actor("m", frozenset({"ModifyTicket"}))
    decline = Actor("d", frozenset({"DeclineOrder"}))
    pending = {o.action: o for o in available_actions(wf, TicketFacts(status="pending"), modify)}
    assert pending["processing"].allowed
    assert not pending["declined"].allowed  # '* -> declined' beats '* -> *'
    assert pending["declined"].reasons[0].required == ("DeclineOrder",)
    assert pending["deleted"].reasons[0].required == ("DeleteTicket",)
    by_decliner = {
        o.action: o.allowed for o in available_actions(wf, TicketFacts(status="pending"), decline)
    }
    assert by_decliner == {"processing": False, "declined": True, "deleted": False}
    processing = {
        o.action: o for o in available_actions(wf, TicketFacts(status="processing"), modify)
    }
    assert processing["delivery"].reasons[0].required == ("ApproveOrder",)


def test_labels_order_and_update_types(orders: Catalog) -> None:
    wf = orders.workflow("orders")
    options = available_actions(wf, TicketFacts(status="pending"), Actor("a", frozenset({"admin"})))
    assert [(o.label, o.update_type) for o in options] == [
        ("Open For Processing", "quick"),
        ("Decline", "reply"),
        ("Delete", "quick"),
    ]
    with pytest.raises(TransitionRefused) as refused:
        apply(wf, "declined", TicketFacts(status="pending"), Actor("a", frozenset({"admin"})))
    assert refused.value.reasons[0].detail == "'declined' requires an external reply"
    out = apply(
        wf,
        "declined",
        TicketFacts(status="pending"),
        Actor("a", frozenset({"admin"})),
        ApplyInputs(comment="out of stock"),
    )
    assert out.status == "declined"


def test_rt_default_ships_as_seed_001_describes_it(shipped: Catalog) -> None:
    wf = shipped.workflow("rt_default")
    # "initial (new), active (open and stalled), and inactive (resolved, rejected, and
    # deleted)"; on_create => 'new'.
    assert {s.name: s.category for s in wf.statuses.values()} == {
        "new": "initial",
        "open": "active",
        "stalled": "active",
        "resolved": "inactive",
        "rejected": "inactive",
        "deleted": "inactive",
    }
    assert wf.default_create_status == "new" and wf.statuses["deleted"].hidden
    # "new -> open" is labelled "Open it" and is a reply; Delete is a quick action; deleting
    # needs DeleteTicket, everything else ModifyTicket.
    agent = Actor("a", frozenset({"tickets:manage"}))
    options = {o.to: o for o in available_actions(wf, TicketFacts(status="new"), agent)}
    assert (options["open"].label, options["open"].update_type) == ("Open It", "reply")
    assert options["deleted"].update_type == "quick" and not options["deleted"].allowed
    closer = Actor("c", frozenset({"tickets:manage", "tickets:close"}))
    assert apply(wf, "deleted", TicketFacts(status="new"), closer).status == "deleted"


def test_maps_between_workflows() -> None:
    # Over the shipped catalog, whose rt_default is RT's `default`: the import's maps name it.
    catalog = load_catalog([ORDERS_YAML])
    assert not [w for w in catalog.warnings if "unknown workflow" in w.message]
    assert catalog.map_status("rt_default", "orders", "open") == "processing"
    assert catalog.map_status("rt_default", "orders", "stalled") == "processing"
    assert catalog.map_status("orders", "rt_default", "returned") == "open"
    assert catalog.map_status("orders", "orders", "returned") == "returned"
    assert catalog.map_status("orders", "rt_default", "deleted") == "deleted"


def test_missing_map_is_an_error_when_moving(tmp_path: Path) -> None:
    text = ORDERS_YAML.read_text().replace("delivered: resolved, ", "")
    edited = tmp_path / "orders.yaml"
    edited.write_text(text)
    catalog = load_catalog([edited])
    with pytest.raises(StatusMapMissing) as missing:
        catalog.map_status("orders", "rt_default", "delivered")
    assert (missing.value.from_workflow, missing.value.to_workflow, missing.value.status) == (
        "orders",
        "rt_default",
        "delivered",
    )
    # the seed's own map lacks `delivery`; flowdesk says so at load time
    assert [w.message for w in catalog.warnings if "has no entry" in w.message] == [
        "map 'orders -> rt_default' has no entry for delivery, delivered: "
        "moving such a ticket will fail"
    ]
    with pytest.raises(UnknownWorkflow):
        catalog.map_status("orders", "nope", "pending")


def test_identical_status_without_map_is_kept(shipped: Catalog) -> None:
    assert shipped.map_status("incident_response", "service_request", "RESOLVED") == "RESOLVED"
    with pytest.raises(StatusMapMissing):
        shipped.map_status("incident_response", "itsm_default", "OPEN")


def test_single_lifecycle_object_and_errors() -> None:
    lc = {"initial": ["a"], "inactive": ["z"], "transitions": {"": ["a"], "a": ["z"]}}
    doc, _ = import_rt(lc, "tiny", "x.json")
    wf = compile_catalog([("x.yaml", dump_catalog(doc, []))]).workflow("tiny")
    assert wf.rights == (("*", "*", ("ModifyTicket",)),)  # RT's fallback right, made explicit
    with pytest.raises(ImportProblem, match="transitions use status 'q'"):
        import_rt({"initial": ["a"], "transitions": {"a": ["q"]}}, "t", "x.json")
