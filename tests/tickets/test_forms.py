"""Intake forms over HTTP: seed 003's questionnaire served as JSON Schema, answered when a
ticket is filed, every wrong answer pointed at, and answers shown, filtered and searched."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from flowdesk.config import Settings
from tests.support import TenantCtx, bearer, new_tenant
from tests.tickets.conftest import Desk, catalog_client

DETAILS = (
    "We need to **rotate** the gateway certificate.\n\n"
    "<script>alert('x')</script>\n\n"
    "See [the runbook](https://wiki.example/runbook) and [this](javascript:alert(1))."
)


def change(**over: Any) -> dict[str, Any]:
    """A platform change request as the questionnaire asks it."""
    answers = {
        "summary": "Rotate the application gateway certificate",
        "service": "networking.application_gateway",
        "environments": ["prd", "xat"],
        "details": DETAILS,
    }
    answers.update(over)
    return {"catalog_item": "platform_change", "answers": answers}


def access(**over: Any) -> dict[str, Any]:
    answers = {
        "summary": "Read access to the Crypto repositories",
        "service": "azure_devops.repositories",
        "environments": ["dev"],
        "details": "I review the Crypto pipelines.",
        "justification": "I am the new reviewer of the Crypto team's pull requests.",
        "access_level": "read",
        "project": "Crypto",
    }
    answers.update(over)
    return {"catalog_item": "platform_access", "answers": {k: v for k, v in answers.items() if v}}


async def post(desk: Desk, body: dict[str, Any], by: Any = None) -> httpx.Response:
    return await desk.client.post("/v1/tickets", json=body, headers=(by or desk.requester).headers)


def pointers(r: httpx.Response) -> dict[str, str]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    return {e["pointer"]: e["detail"] for e in r.json()["errors"]}


# --- the form, served ------------------------------------------------------------------------


async def test_the_catalog_serves_each_platform_form_as_json_schema(desk: Desk) -> None:
    h = desk.requester.headers
    listed = (await desk.client.get("/v1/catalog", headers=h)).json()
    with_form = {i["name"] for i in listed if i["has_form"]}
    assert with_form == {"platform_change", "platform_access", "platform_debug"}

    r = await desk.client.get("/v1/catalog/platform_access", headers=h)
    assert r.status_code == 200, r.text
    item = r.json()
    assert item["type"] == "access" and item["workflow"] == "platform_request"
    schema = item["form"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert list(schema["properties"]) == [
        "summary",
        "service",
        "service_other",
        "environments",
        "details",
        "justification",
        "access_level",
        "project",
    ]
    assert schema["required"] == [
        "summary",
        "service",
        "environments",
        "details",
        "justification",
        "access_level",
    ]
    assert schema["additionalProperties"] is False
    summary = schema["properties"]["summary"]
    assert summary["title"] == "Summarize the request in 10 words or fewer"
    assert summary["description"] == "This will become the issue summary (title)"
    environments = schema["properties"]["environments"]
    assert environments["type"] == "array" and environments["uniqueItems"] is True
    assert [(o["const"], o["title"]) for o in environments["items"]["oneOf"]] == [
        ("prd", "production (prd)"),
        ("xat", "preview (xat)"),
        ("qar", "regression (qar)"),
        ("iat", "UAT (iat)"),
        ("dev", "devtest (dev)"),
        ("npd", "nonprod (npd)"),
        ("other", "Other / Not Applicable"),
    ]
    levels = schema["properties"]["access_level"]["oneOf"]
    assert [o["const"] for o in levels] == ["read", "write", "contributor"]
    assert schema["properties"]["details"]["contentMediaType"] == "text/markdown"
    assert schema["properties"]["details"]["description"].startswith(
        "If you're requesting access to something, why do you need it?"
    )

    hints = item["form_hints"]
    assert hints["order"] == list(schema["properties"])
    service = hints["questions"]["service"]
    assert service["widget"] == "select" and service["required"] is True
    shown = [
        (o["group"], [(m["value"], m["label"]) for m in o["options"]])
        if "group" in o
        else (o["value"], o["label"])
        for o in service["options"]
    ]
    assert shown == [
        ("avd", "AVD"),
        ("skybot", "Skybot"),
        (
            "Azure DevOps",
            [
                ("azure_devops.pipelines", "Pipelines"),
                ("azure_devops.repositories", "Repositories"),
                ("azure_devops.other", "Other"),
            ],
        ),
        ("kubernetes", "Kubernetes (AKS)"),
        (
            "Networking",
            [
                ("networking.application_gateway", "Application Gateway"),
                ("networking.palo_alto", "Palo Alto"),
                ("networking.cloudflare_waf", "Cloudflare WAF"),
                ("networking.godaddy_dns", "GoDaddy (DNS)"),
                ("networking.other", "Other"),
            ],
        ),
        (
            "Virtual Machines",
            [
                ("vm.web", "Web"),
                ("vm.skybot", "Skybot (app)"),
                ("vm.proxy", "Proxy"),
                ("vm.gateway", "Gateway"),
                ("vm.other", "Other"),
            ],
        ),
        ("azure_functions", "Azure Functions"),
        ("azure_batch", "Azure Batch"),
        ("cloudflare_warp", "Cloudflare WARP"),
        ("new_relic", "New Relic"),
        ("redis", "Redis"),
        ("other", "Other"),
    ]
    assert service["options"][-1] == {
        "value": "other",
        "label": "Other",
        "help": "note - database and crm are not managed by us!",
        "other": True,
    }
    other = hints["questions"]["service_other"]
    assert other["other_for"] == "service"
    assert other["when"] == ["azure_devops.other", "networking.other", "vm.other", "other"]
    assert hints["questions"]["summary"] | {"help": ""} == {
        "label": "Summarize the request in 10 words or fewer",
        "help": "",
        "widget": "text",
        "required": True,
        "maps_to": "title",
        "max_words": 10,
        "max_length": 300,
    }
    assert hints["questions"]["environments"]["widget"] == "checkboxes"
    assert hints["questions"]["details"]["widget"] == "markdown"

    # The change and debug items ask the same questions, without the access ones.
    change_form = (await desk.client.get("/v1/catalog/platform_change", headers=h)).json()
    assert "justification" not in change_form["form"]["properties"]
    debug_form = (await desk.client.get("/v1/catalog/platform_debug", headers=h)).json()
    assert debug_form["form"] == change_form["form"]


async def test_an_item_without_a_form_and_an_unknown_item(desk: Desk) -> None:
    h = desk.requester.headers
    r = await desk.client.get("/v1/catalog/itsm_incident", headers=h)
    assert r.status_code == 200
    assert "form" not in r.json() and r.json()["has_form"] is False
    r = await desk.client.get("/v1/catalog/no_such_item", headers=h)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "no_such_item" in r.json()["detail"]


# --- filing ----------------------------------------------------------------------------------


async def test_seed_003_items_are_filed_with_their_answers(desk: Desk) -> None:
    """The requester files each platform item; the summary becomes the title, the rest are
    the ticket's answers, and the rich text is rendered, sanitised."""
    bodies = {
        "platform_change": change(),
        "platform_access": access(),
        "platform_debug": {**change(), "catalog_item": "platform_debug"},
    }
    for item, body in bodies.items():
        r = await post(desk, body)
        assert r.status_code == 201, (item, r.text)
        ticket = r.json()
        assert ticket["catalog_item"] == item
        assert ticket["status"] == "SUBMITTED"
        assert ticket["title"] == body["answers"]["summary"]
        expected = {k: v for k, v in body["answers"].items() if k != "summary"}
        assert ticket["answers"] == expected
        assert set(ticket["answers_html"]) == {"details"}
        # What GET shows is what was stored.
        again = await desk.client.get(f"/v1/tickets/{ticket['id']}", headers=desk.agent.headers)
        assert again.json()["answers"] == expected
    assert ticket["priority"] == "HIGH"  # platform_debug's default

    html = (await post(desk, change())).json()["answers_html"]["details"]
    assert "<strong>rotate</strong>" in html
    assert '<a href="https://wiki.example/runbook" rel="noopener noreferrer">' in html
    assert "<script" not in html and "alert('x')" not in html
    assert "javascript:" not in html.split("[this]")[0]
    assert 'href="javascript' not in html


async def test_a_summary_of_eleven_words_is_refused(desk: Desk) -> None:
    eleven = "one two three four five six seven eight nine ten eleven"
    assert pointers(await post(desk, change(summary=eleven))) == {
        "/answers/summary": "at most 10 words"
    }
    ten = "one two three four five six seven eight nine ten"
    r = await post(desk, change(summary=f"  {ten}  "))
    assert r.status_code == 201, r.text
    assert r.json()["title"] == ten


async def test_every_wrong_answer_is_pointed_at_and_nothing_is_filed(desk: Desk) -> None:
    before = await desk.client.get("/v1/tickets", headers=desk.agent.headers)
    body = access(
        summary="",
        service="oracle",
        environments=["prd", "moon", "prd"],
        details="x\u0000y",
        justification=None,
        access_level="root",
        project="p" * 101,
    )
    body["answers"] |= {"summary": "   ", "colour": "blue", "service_other": "Oracle"}
    assert pointers(await post(desk, body)) == {
        "/answers/summary": "required: must not be blank",
        "/answers/service": "'oracle' is not one of the options",
        "/answers/service_other": "only when an 'Other' option is chosen",
        "/answers/environments": "'moon' is not one of the options; each option at most once",
        "/answers/details": "must not contain NUL characters",
        "/answers/justification": "required",
        "/answers/access_level": "'root' is not one of the options",
        "/answers/project": "at most 100 characters",
        "/answers/colour": "not a question of this form",
    }
    wrong_types = access(service=3, environments="prd", details=["x"])
    assert pointers(await post(desk, wrong_types)) == {
        "/answers/service": "must be one of the options (a string)",
        "/answers/environments": "must be a list of options",
        "/answers/details": "must be a string",
    }
    missing = {"catalog_item": "platform_access", "answers": {}}
    assert pointers(await post(desk, missing)) == {
        "/answers/summary": "required",
        "/answers/service": "required",
        "/answers/environments": "required",
        "/answers/details": "required",
        "/answers/justification": "required",
        "/answers/access_level": "required",
    }
    none_chosen = access()
    none_chosen["answers"]["environments"] = []
    assert pointers(await post(desk, none_chosen)) == {
        "/answers/environments": "required: choose at least one option"
    }
    after = await desk.client.get("/v1/tickets", headers=desk.agent.headers)
    assert after.json()["items"] == before.json()["items"]


async def test_an_access_request_must_say_why(desk: Desk) -> None:
    """Seed 003: every access request must include an explanation of why the user needs
    this access."""
    assert pointers(await post(desk, access(justification=None))) == {
        "/answers/justification": "required"
    }
    assert pointers(await post(desk, access(justification=" \n "))) == {
        "/answers/justification": "required: must not be blank"
    }


async def test_an_other_option_asks_for_its_text(desk: Desk) -> None:
    assert pointers(await post(desk, change(service="vm.other"))) == {
        "/answers/service_other": "required when an 'Other' option is chosen"
    }
    r = await post(desk, change(service="vm.other", service_other="Bastion host"))
    assert r.status_code == 201, r.text
    assert r.json()["answers"]["service_other"] == "Bastion host"


async def test_the_served_schema_is_what_is_validated(desk: Desk) -> None:
    """Whatever the served schema accepts is filed, and whatever it refuses is a 422."""
    h = desk.requester.headers
    schema = (await desk.client.get("/v1/catalog/platform_access", headers=h)).json()["form"]
    validator = Draft202012Validator(schema)
    cases = [
        access()["answers"],
        access(summary="a b c d e f g h i j k")["answers"],
        access(service="other")["answers"],
        access(service="other", service_other="Postgres")["answers"],
        access(service="redis", service_other="Postgres")["answers"],
        access(environments=["other", "npd"])["answers"],
        {**access()["answers"], "environments": []},
        access(access_level="contributor", project=None)["answers"],
        access(justification="\t")["answers"],
        access(details="d" * 20_001)["answers"],
        {**access()["answers"], "extra": 1},
    ]
    for answers in cases:
        valid = validator.is_valid(answers)
        r = await post(desk, {"catalog_item": "platform_access", "answers": answers})
        assert r.status_code == (201 if valid else 422), (answers, r.text)


async def test_a_title_is_given_once(desk: Desk) -> None:
    body = {**change(), "title": "Also a title"}
    assert pointers(await post(desk, body)) == {
        "/title": "the answer 'summary' gives the title: send one or the other"
    }


async def test_items_without_a_form_take_no_answers_and_need_a_title(desk: Desk) -> None:
    body = {"title": "Printer", "catalog_item": "itsm_incident", "answers": {"summary": "x"}}
    assert pointers(await post(desk, body)) == {"/answers": "this catalog item asks no questions"}
    assert pointers(await post(desk, {"catalog_item": "itsm_incident"})) == {"/title": "required"}
    r = await post(desk, {"title": "Printer", "catalog_item": "itsm_incident"})
    assert r.status_code == 201
    assert r.json()["answers"] == {} and r.json()["answers_html"] == {}


async def test_answers_cannot_be_changed(desk: Desk) -> None:
    ticket = (await post(desk, change())).json()
    r = await desk.client.patch(
        f"/v1/tickets/{ticket['id']}",
        json={"answers": {"environments": ["dev"]}},
        headers=desk.admin.headers,
    )
    assert r.status_code == 422
    again = await desk.client.get(f"/v1/tickets/{ticket['id']}", headers=desk.admin.headers)
    assert again.json()["answers"]["environments"] == ["prd", "xat"]


# --- a form of every kind of question --------------------------------------------------------

FORMS = """
forms:
  - name: hardware
    title: "Hardware request"
    questions:
      - {key: what, label: "What do you need?", type: text, required: true, maps_to: title,
         max_length: 80}
      - {key: why, label: "Why?", type: rich_text, maps_to: description}
      - {key: urgency, label: "How urgent?", type: choice, maps_to: priority,
         options: [LOW, MEDIUM, HIGH]}
      - {key: cost_centre, label: "Cost centre", type: text, maps_to: fields.cost_centre,
         max_words: 1}
      - {key: manager, label: "Your manager", type: user, required: true}
      - {key: notes, label: "Notes", type: rich_text}
catalog:
  - {name: laptop, displayName: "Laptop", type: service_request, workflow: itsm_default,
     form: hardware}
"""


async def test_answers_fill_ticket_fields_and_users_are_the_tenants(
    settings: Settings, tmp_path: Path
) -> None:
    async with catalog_client(settings, tmp_path, FORMS) as client:
        app = client.app  # type: ignore[attr-defined]
        tenant = await new_tenant(app, client)
        other = await new_tenant(app, client)
        requester = await tenant.user("tickets:create")
        manager = await tenant.user()
        stranger = await other.user()

        def laptop(**answers: Any) -> dict[str, Any]:
            given = {
                "what": "A laptop with 32 GB",
                "why": "My *builds* are slow.",
                "urgency": "HIGH",
                "cost_centre": "CC-42",
                "manager": manager.id,
                **answers,
            }
            return {"catalog_item": "laptop", "answers": {k: v for k, v in given.items() if v}}

        r = await client.post("/v1/tickets", json=laptop(), headers=requester.headers)
        assert r.status_code == 201, r.text
        ticket = r.json()
        assert ticket["title"] == "A laptop with 32 GB"
        assert ticket["description"] == "My *builds* are slow."  # as written
        assert ticket["priority"] == "HIGH"  # the form lets the requester say
        assert ticket["fields"] == {"cost_centre": "CC-42"}
        assert ticket["answers"] == {"manager": manager.id}

        r = await client.post(
            "/v1/tickets", json=laptop(manager=stranger.id), headers=requester.headers
        )
        assert r.status_code == 422
        assert r.json()["errors"] == [
            {"pointer": "/answers/manager", "detail": "not a user of this tenant"}
        ]
        for wrong in ("me", str(uuid.uuid4())):
            r = await client.post(
                "/v1/tickets", json=laptop(manager=wrong), headers=requester.headers
            )
            assert r.status_code == 422, wrong
            assert r.json()["errors"][0]["pointer"] == "/answers/manager"

        r = await client.post(
            "/v1/tickets",
            json={**laptop(), "fields": {"cost_centre": "CC-1"}, "priority": "LOW"},
            headers=tenant.headers,
        )
        assert {e["pointer"] for e in r.json()["errors"]} == {"/fields/cost_centre", "/priority"}
        r = await client.post(
            "/v1/tickets", json=laptop(cost_centre="CC 42"), headers=requester.headers
        )
        assert r.json()["errors"] == [
            {"pointer": "/answers/cost_centre", "detail": "at most 1 words"}
        ]
        r = await client.post("/v1/tickets", json=laptop(what="x" * 81), headers=requester.headers)
        assert r.json()["errors"] == [
            {"pointer": "/answers/what", "detail": "at most 80 characters"}
        ]
        r = await client.get("/v1/catalog/laptop", headers=requester.headers)
        assert r.json()["form"]["title"] == "Hardware request"
        assert r.json()["form"]["properties"]["manager"]["format"] == "uuid"
        assert r.json()["form_hints"]["questions"]["urgency"]["maps_to"] == "priority"


# --- lists -----------------------------------------------------------------------------------


async def _listed(client: httpx.AsyncClient, tenant: TenantCtx, query: str) -> set[str]:
    r = await client.get(f"/v1/tickets?{query}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return {t["title"] for t in r.json()["items"]}


async def test_lists_filter_and_search_on_answers(desk: Desk) -> None:
    client, tenant = desk.client, desk.tenant
    for summary, service, environments, details in [
        ("Production cert", "networking.application_gateway", ["prd", "xat"], "expiring"),
        ("Dev cache", "redis", ["dev"], "the cache is evicting keys"),
        ("Preview dashboards", "new_relic", ["xat"], "dashboards for the **kraken** team"),
    ]:
        body = change(summary=summary, service=service, environments=environments, details=details)
        assert (await post(desk, body)).status_code == 201
    await desk.open(title="Unrelated printer")

    assert await _listed(client, tenant, "answer.environments=prd") == {"Production cert"}
    assert await _listed(client, tenant, "answer.environments=xat") == {
        "Production cert",
        "Preview dashboards",
    }
    assert await _listed(client, tenant, "answer.environments=prd&answer.environments=dev") == {
        "Production cert",
        "Dev cache",
    }
    assert await _listed(client, tenant, "answer.service=redis") == {"Dev cache"}
    assert await _listed(client, tenant, "answer.service=redis&answer.environments=xat") == set()
    assert await _listed(client, tenant, "answer.service=%22redis%22") == set()
    # The full-text search covers the answers' text.
    assert await _listed(client, tenant, "q=kraken") == {"Preview dashboards"}
    assert await _listed(client, tenant, "q=evicting") == {"Dev cache"}

    r = await client.get(
        "/v1/tickets/counts?group_by=status&answer.environments=xat", headers=tenant.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 2

    # The public API's lists share the code.
    public = bearer(await tenant.key(tenant.admin.id, ["tickets:read"], channel="public"))
    r = await client.get("/public/v1/tickets?answer.environments=dev", headers=public)
    assert r.status_code == 200, r.text
    assert [t["title"] for t in r.json()["items"]] == ["Dev cache"]

    # A requester filters their own tickets.
    mine = await client.get("/v1/tickets?answer.service=redis", headers=desk.requester.headers)
    assert [t["title"] for t in mine.json()["items"]] == ["Dev cache"]

    r = await client.get("/v1/tickets?answer.Bad-Key=x", headers=tenant.headers)
    assert pointers(r) == {"/query/answer.Bad-Key": "not a question key"}
