"""OpenID Connect sign-in against a real local provider (tests/auth/oidc_provider.py): a
person's token files and reads tickets, their user is made and kept up to date from the
claims, and every forgery or misuse gets exactly the 401 of a bad API key."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.auth.oidc_provider import Provider, tampered
from tests.sql import fetch
from tests.support import TICKET, Operator, TenantCtx, bearer, new_tenant, runtime

FLOWDESK = str(Path(sys.executable).with_name("flowdesk"))


@pytest.fixture
async def provider() -> AsyncIterator[Provider]:
    async with Provider() as running:
        running.add_key("RSA")
        yield running


async def _trust(
    client: httpx.AsyncClient, tenant: TenantCtx, provider: Provider, **body: Any
) -> dict[str, Any]:
    audience = body.pop("audience", f"spa-{tenant.slug}")
    r = await client.put(
        "/v1/tenant/identity-providers/corp",
        json={"issuer": provider.issuer, "audience": audience, **body},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _bad_key_answer(client: httpx.AsyncClient) -> tuple[int, str, dict[str, Any]]:
    r = await client.get("/v1/me", headers=bearer("fdk_not-a-key"))
    return r.status_code, r.headers["content-type"], r.json()


async def _refused(client: httpx.AsyncClient, token: str, path: str = "/v1/me") -> None:
    r = await client.get(path, headers=bearer(token))
    assert (r.status_code, r.headers["content-type"], r.json()) == await _bad_key_answer(client)
    assert r.headers["www-authenticate"] == 'Bearer realm="flowdesk"'


async def _members(client: httpx.AsyncClient, tenant: TenantCtx, group_id: str) -> list[str]:
    r = await client.get(f"/v1/groups/{group_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["member_ids"])


# --- signing in ------------------------------------------------------------------------------


async def test_first_sign_in_makes_the_user_and_later_ones_refresh_it(
    client: httpx.AsyncClient, tenant: TenantCtx, provider: Provider
) -> None:
    requesters = await tenant.group("tickets:create")
    agents = await tenant.group("tickets:create", "tickets:manage")
    setup = await _trust(
        client,
        tenant,
        provider,
        groups_claim="roles",
        group_map={"desk-agents": agents},
        default_group_id=requesters,
    )
    assert setup["jwks_uri"] is None and setup["email_claim"] == "email"
    audience = setup["audience"]

    first = provider.token(
        audience, "person-1", email="ada@corp.example", name="Ada", roles=["desk-agents", "x"]
    )
    r = await client.get("/v1/me", headers=bearer(first))
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["tenant"]["slug"] == tenant.slug
    assert (me["user"]["email"], me["user"]["name"], me["user"]["kind"]) == (
        "ada@corp.example",
        "Ada",
        "person",
    )
    assert me["scopes"] == ["tickets:read", "tickets:write"]
    assert me["permissions"] == ["tickets:create", "tickets:manage"]
    user_id = me["user"]["id"]
    assert user_id in await _members(client, tenant, requesters)
    assert user_id in await _members(client, tenant, agents)
    # The token's requests go under the identity's sign-in key, which no one can present.
    key = (await client.get(f"/v1/api-keys/{me['key_id']}", headers=tenant.headers)).json()
    assert key["name"] == "sign-in: corp" and key["prefix"] == "oidc"

    # The provider renamed her, changed her address and took her out of desk-agents.
    later = provider.token(audience, "person-1", email="ada@new.example", name="Ada L.", roles=[])
    me = (await client.get("/v1/me", headers=bearer(later))).json()
    assert me["user"]["id"] == user_id
    assert (me["user"]["email"], me["user"]["name"]) == ("ada@new.example", "Ada L.")
    assert me["permissions"] == ["tickets:create"]
    assert user_id in await _members(client, tenant, requesters)
    assert user_id not in await _members(client, tenant, agents)
    assert me["key_id"] == key["id"]


async def test_a_sign_in_joins_agent_groups_only_within_the_seats(
    app: FastAPI, client: httpx.AsyncClient, provider: Provider, operator: Operator
) -> None:
    # One seat, taken by the admin: the provider may not hand out a second one.
    tenant = await new_tenant(app, client, quotas={"max_agents": 1})
    requesters = await tenant.group("tickets:create")
    agents = await tenant.group("tickets:create", "tickets:manage")
    setup = await _trust(
        client,
        tenant,
        provider,
        groups_claim="roles",
        group_map={"desk-agents": agents, "staff": requesters},
    )
    token = provider.token(
        setup["audience"], "person-2", email="bo@corp.example", roles=["desk-agents", "staff"]
    )
    me = (await client.get("/v1/me", headers=bearer(token))).json()
    # Signed in, without the seat: the agents group left out, the refusal on the platform's
    # record; the group that takes no seat joined.
    assert me["permissions"] == ["tickets:create"]
    assert me["user"]["id"] not in await _members(client, tenant, agents)
    assert me["user"]["id"] in await _members(client, tenant, requesters)
    alerts = (await operator.get("/quota-alerts", tenant=tenant.slug, kind="refused")).json()
    assert [a["quota"] for a in alerts["items"]] == ["max_agents"]
    # With a seat free, the next sign-in takes it.
    await operator.licence(tenant.slug, quotas={"max_agents": 2})
    me = (await client.get("/v1/me", headers=bearer(token))).json()
    assert me["permissions"] == ["tickets:create", "tickets:manage"]


async def test_a_token_files_and_reads_tickets(
    client: httpx.AsyncClient, tenant: TenantCtx, provider: Provider, app: FastAPI
) -> None:
    ec = provider.add_key("EC")
    ed = provider.add_key("OKP")
    setup = await _trust(
        client, tenant, provider, default_group_id=await tenant.group("tickets:create")
    )
    for kid in (provider.published[0], ec, ed):
        token = provider.token(setup["audience"], f"p-{kid}", kid=kid, email=f"{kid}@corp.example")
        r = await client.post("/v1/tickets", json=TICKET, headers=bearer(token))
        assert r.status_code == 201, r.text
        ticket = r.json()
        r = await client.get(f"/v1/tickets/{ticket['id']}", headers=bearer(token))
        assert r.status_code == 200 and r.json()["title"] == TICKET["title"]
        mine = await client.get("/v1/tickets", headers=bearer(token))
        assert [t["id"] for t in mine.json()["items"]] == [ticket["id"]]
    # Metered through the usage middleware under the sign-in key (a real api_keys row).
    me = (await client.get("/v1/me", headers=bearer(token))).json()
    assert await runtime(app).usage_meter.flush() > 0
    counted = await fetch(
        app, "SELECT sum(count) AS n FROM api_usage WHERE api_key_id = $1", uuid.UUID(me["key_id"])
    )
    assert counted[0]["n"] >= 3


async def test_an_address_the_tenant_already_has_is_taken_only_when_verified(
    client: httpx.AsyncClient, tenant: TenantCtx, provider: Provider
) -> None:
    known = await tenant.user("tickets:create")
    setup = await _trust(client, tenant, provider)
    await _refused(client, provider.token(setup["audience"], "who", email=known.email))
    vouched = provider.token(setup["audience"], "who", email=known.email, email_verified=True)
    me = (await client.get("/v1/me", headers=bearer(vouched))).json()
    assert me["user"]["id"] == known.id and me["permissions"] == ["tickets:create"]


# --- refusals --------------------------------------------------------------------------------


async def test_forgeries_and_misfits_get_the_bad_key_401(
    client: httpx.AsyncClient, tenant: TenantCtx, provider: Provider
) -> None:
    setup = await _trust(client, tenant, provider)
    audience = setup["audience"]
    claims = provider.claims(audience, "eve", email="eve@corp.example")
    good = provider.sign(claims)
    now = int(time.time())
    forgeries = {
        "alg none": provider.unsigned(claims),
        "HS256 with the public key": provider.hmac_with_public_key(claims),
        "tampered payload": tampered(good, sub="someone-else"),
        "expired": provider.sign(claims | {"exp": now - 120, "iat": now - 600, "nbf": now - 600}),
        "not yet valid": provider.sign(claims | {"nbf": now + 600}),
        "issued in the future": provider.sign(claims | {"iat": now + 600}),
        "no expiry": provider.sign({k: v for k, v in claims.items() if k != "exp"}),
        "wrong audience": provider.sign(claims | {"aud": "someone-elses-app"}),
        "wrong issuer": provider.sign(claims | {"iss": "http://127.0.0.1:1/other"}),
        "no subject": provider.sign({k: v for k, v in claims.items() if k != "sub"}),
        "garbage": "a.b.c",
    }
    for name, token in forgeries.items():
        try:
            await _refused(client, token)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc
    # Within the leeway (60 s), a token just expired is still good; the genuine one is.
    late = provider.sign(claims | {"exp": now - 10})
    assert (await client.get("/v1/me", headers=bearer(late))).status_code == 200
    assert (await client.get("/v1/me", headers=bearer(good))).status_code == 200


async def test_an_unknown_kid_refetches_once_then_401(
    client: httpx.AsyncClient, tenant: TenantCtx, provider: Provider
) -> None:
    setup = await _trust(client, tenant, provider)
    audience = setup["audience"]
    ok = provider.token(audience, "kid-user", email="k@corp.example")
    assert (await client.get("/v1/me", headers=bearer(ok))).status_code == 200
    assert (provider.discovery_hits, provider.jwks_hits) == (1, 1)

    rogue = provider.add_key("RSA", publish=False)
    for _ in range(3):
        await _refused(client, provider.token(audience, "kid-user", kid=rogue))
    assert provider.jwks_hits == 2  # one refetch, then no more within the minute
    # The known key still works, from the cache.
    again = provider.token(audience, "kid-user", email="k@corp.example")
    assert (await client.get("/v1/me", headers=bearer(again))).status_code == 200
    assert provider.jwks_hits == 2


async def test_a_rotated_key_works_once_the_provider_publishes_it(
    client: httpx.AsyncClient, tenant: TenantCtx, provider: Provider
) -> None:
    setup = await _trust(client, tenant, provider, jwks_uri=provider.jwks_uri)
    audience = setup["audience"]
    old = provider.published[0]
    ok = provider.token(audience, "rotating", email="r@corp.example")
    assert (await client.get("/v1/me", headers=bearer(ok))).status_code == 200
    assert provider.discovery_hits == 0  # the jwks_uri given, no discovery

    new = provider.add_key("EC", publish=False)
    provider.publish(new)
    provider.published.remove(old)
    token = provider.token(audience, "rotating", kid=new, email="r@corp.example")
    assert (await client.get("/v1/me", headers=bearer(token))).status_code == 200
    assert provider.jwks_hits == 2


async def test_a_token_cannot_reach_another_tenants_data(
    client: httpx.AsyncClient,
    tenant: TenantCtx,
    other_tenant: TenantCtx,
    provider: Provider,
) -> None:
    # Both tenants trust the same issuer, each with its own audience.
    mine = await _trust(
        client, tenant, provider, default_group_id=await tenant.group("tickets:create")
    )
    await _trust(client, other_tenant, provider)
    r = await client.post("/v1/tickets", json=TICKET, headers=other_tenant.headers)
    assert r.status_code == 201, r.text
    theirs = r.json()["id"]

    token = provider.token(mine["audience"], "a-person", email="p@corp.example")
    me = (await client.get("/v1/me", headers=bearer(token))).json()
    assert me["tenant"]["slug"] == tenant.slug
    r = await client.get(f"/v1/tickets/{theirs}", headers=bearer(token))
    assert r.status_code == 404
    # An audience no tenant trusts, or the pair of both: no tenant at all.
    await _refused(client, provider.token("nobodys", "a-person"))
    both = [mine["audience"], f"spa-{other_tenant.slug}"]
    await _refused(client, provider.token(both, "a-person"))  # type: ignore[arg-type]


async def test_a_deleted_user_is_refused_at_once(
    client: httpx.AsyncClient, tenant: TenantCtx, provider: Provider
) -> None:
    setup = await _trust(client, tenant, provider)
    token = provider.token(setup["audience"], "leaver", email="leaver@corp.example")
    me = (await client.get("/v1/me", headers=bearer(token))).json()
    assert (await client.get("/v1/me", headers=bearer(token))).status_code == 200  # cached
    r = await client.delete(f"/v1/users/{me['user']['id']}", headers=tenant.headers)
    assert r.status_code == 204
    await _refused(client, token)
    # A fresh token for the same person changes nothing: the identity is a deleted user's.
    await _refused(client, provider.token(setup["audience"], "leaver", email="x@corp.example"))


async def test_a_revoked_sign_in_key_cuts_the_person_off(
    client: httpx.AsyncClient, tenant: TenantCtx, provider: Provider
) -> None:
    setup = await _trust(client, tenant, provider)
    token = provider.token(setup["audience"], "cut", email="cut@corp.example")
    me = (await client.get("/v1/me", headers=bearer(token))).json()
    r = await client.delete(f"/v1/api-keys/{me['key_id']}", headers=tenant.headers)
    assert r.status_code == 204
    await _refused(client, token)


async def test_a_deleted_provider_signs_no_one_in(
    client: httpx.AsyncClient, tenant: TenantCtx, provider: Provider
) -> None:
    setup = await _trust(client, tenant, provider)
    token = provider.token(setup["audience"], "p", email="p@corp.example")
    assert (await client.get("/v1/me", headers=bearer(token))).status_code == 200
    r = await client.delete("/v1/tenant/identity-providers/corp", headers=tenant.headers)
    assert r.status_code == 204
    await _refused(client, token)


# --- administration --------------------------------------------------------------------------


async def test_the_admin_endpoints_validate(
    client: httpx.AsyncClient, app: FastAPI, tenant: TenantCtx, other_tenant: TenantCtx
) -> None:
    url = "/v1/tenant/identity-providers"
    h = tenant.headers

    async def put(name: str, **body: Any) -> httpx.Response:
        return await client.put(f"{url}/{name}", json={"audience": "app", **body}, headers=h)

    r = await put("plain", issuer="http://idp.corp.example")
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/issuer"
    r = await put("plain", issuer="https://idp.corp.example", jwks_uri="http://idp.corp.example/k")
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/jwks_uri"
    for loopback in ("http://127.0.0.1:9999", "http://localhost:9999/realm", "http://[::1]:80"):
        r = await put("local", issuer=loopback, audience=f"app-{loopback}")
        assert r.status_code == 200, r.text
    foreign = await other_tenant.group("tickets:create")
    r = await put("groups", issuer="https://idp.corp.example", default_group_id=foreign)
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/default_group_id"
    r = await put(
        "groups",
        issuer="https://idp.corp.example",
        groups_claim="groups",
        group_map={"a/b": str(uuid.uuid4())},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/group_map/a~1b"
    r = await put("bad name!", issuer="https://idp.corp.example")
    assert r.status_code == 422

    mine = await tenant.group("tickets:create")
    r = await put(
        "corp",
        issuer="https://idp.corp.example",
        audience="desk",
        groups_claim="groups",
        group_map={"staff": mine},
        default_group_id=mine,
    )
    assert r.status_code == 200, r.text
    # Another tenant may share the issuer with its own audience, never with the same one.
    r = await client.put(
        f"{url}/corp",
        json={"issuer": "https://idp.corp.example", "audience": "desk"},
        headers=other_tenant.headers,
    )
    assert r.status_code == 409
    r = await client.put(
        f"{url}/corp",
        json={"issuer": "https://idp.corp.example", "audience": "desk-2"},
        headers=other_tenant.headers,
    )
    assert r.status_code == 200

    got = (await client.get(f"{url}/corp", headers=h)).json()
    assert got["group_map"] == {"staff": mine} and got["default_group_id"] == mine
    names = [p["name"] for p in (await client.get(url, headers=h)).json()["items"]]
    assert names == ["corp", "local"]
    # Deleting the default group clears it from the provider.
    assert (await client.delete(f"/v1/groups/{mine}", headers=h)).status_code == 204
    assert (await client.get(f"{url}/corp", headers=h)).json()["default_group_id"] is None

    assert (await client.delete(f"{url}/corp", headers=h)).status_code == 204
    assert (await client.get(f"{url}/corp", headers=h)).status_code == 404
    assert (await client.delete(f"{url}/corp", headers=h)).status_code == 404
    someone = await tenant.user(scopes=["tickets:read", "tickets:write"])
    assert (await client.get(url, headers=someone.headers)).status_code == 403


async def test_the_platform_api_sets_a_tenants_providers(
    client: httpx.AsyncClient, tenant: TenantCtx, operator: Operator, provider: Provider
) -> None:
    url = f"/platform/v1/tenants/{tenant.slug}/identity-providers"
    body = {"issuer": provider.issuer, "audience": f"op-{tenant.slug}"}
    r = await client.put(f"{url}/corp", json=body, headers=operator.headers)
    assert r.status_code == 200, r.text
    assert [
        p["name"]
        for p in (await operator.get(f"/tenants/{tenant.slug}/identity-providers")).json()["items"]
    ] == ["corp"]
    assert (
        await operator.get(f"/tenants/{tenant.slug}/identity-providers/corp")
    ).status_code == 200
    token = provider.token(body["audience"], "op-made", email="o@corp.example")
    assert (await client.get("/v1/me", headers=bearer(token))).status_code == 200
    r = await client.put(
        f"{url}/bad", json={**body, "issuer": "http://x.example"}, headers=operator.headers
    )
    assert r.status_code == 422
    assert (await client.delete(f"{url}/corp", headers=operator.headers)).status_code == 204
    await _refused(client, token)
    r = await client.put(f"{url}/corp", json=body, headers=tenant.headers)
    assert r.status_code == 401


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDESK_")}
    env["FLOWDESK_DATABASE_URL"] = database_url
    return subprocess.run(
        [FLOWDESK, "tenants", "identity-provider", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_cli_sets_lists_and_deletes_providers(
    client: httpx.AsyncClient, app: FastAPI, database_url: str
) -> None:
    tenant = await new_tenant(app, client)
    group = await tenant.group("tickets:create")
    done = _cli(
        database_url,
        "set",
        tenant.slug,
        "corp",
        "--issuer",
        "https://login.corp.example/realm",
        "--audience",
        f"cli-{tenant.slug}",
        "--groups-claim",
        "groups",
        "--map-group",
        f"staff={group}",
        "--default-group",
        group,
    )
    assert done.returncode == 0, done.stderr
    r = await client.get("/v1/tenant/identity-providers/corp", headers=tenant.headers)
    assert r.status_code == 200 and r.json()["group_map"] == {"staff": group}
    listed = _cli(database_url, "list", tenant.slug)
    assert listed.returncode == 0 and '"name":"corp"' in listed.stdout
    bad = _cli(
        database_url, "set", tenant.slug, "x", "--issuer", "http://a.example", "--audience", "b"
    )
    assert bad.returncode == 1 and "/issuer" in bad.stderr
    gone = _cli(database_url, "delete", tenant.slug, "corp")
    assert gone.returncode == 0, gone.stderr
    assert _cli(database_url, "delete", tenant.slug, "corp").returncode == 1
    r = await client.get("/v1/tenant/identity-providers", headers=tenant.headers)
    assert r.json()["items"] == []
