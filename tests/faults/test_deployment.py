"""Deployment (issue 16, item 10): migrations under a role of their own while the runtime role
holds DML grants only (the SQL of docs/deployment.md, run as written), the schema check of a
`serve` that does not migrate, the docs turned off, and the image's supply chain (a base pinned
by digest, every dependency installed by hash from a lock that agrees with constraints.txt)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import tomllib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy.engine import make_url

from flowdesk.app import create_app
from flowdesk.cli.common import prepared_database
from flowdesk.config import Settings
from flowdesk.db.pool import asyncpg_dsn
from tests.faults.world import TICKET, licensed_tenant
from tests.servers import FLOWDESK

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = ROOT / "docs" / "deployment.md"


def documented_sql(section: str) -> list[str]:
    """The statements of the ```sql block under `section` of docs/deployment.md."""
    text = DEPLOYMENT.read_text(encoding="utf-8")
    block = re.search(rf"<!-- {section} -->\s*```sql\n(.*?)```", text, re.DOTALL)
    assert block, f"no sql block marked {section} in {DEPLOYMENT}"
    lines = [line for line in block.group(1).splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def as_role(url: str, role: str) -> str:
    return make_url(url).set(username=role, password=None).render_as_string(hide_password=False)


async def _run_sql(url: str, statements: list[str], **names: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for statement in statements:
            await conn.execute(statement.format(**names))
    finally:
        await conn.close()


@pytest.fixture
async def roles(
    create_database: Callable[[], str], server_url: str
) -> AsyncIterator[tuple[str, str]]:
    """A database owned by a migration role, and a runtime role, both set up with the SQL of
    docs/deployment.md; (migration URL, runtime URL). Dropped afterwards (roles are the
    server's, not the database's)."""
    url = create_database()
    suffix = uuid.uuid4().hex[:8]
    names = {
        "database": make_url(url).database or "",
        "owner": f"flowdesk_owner_{suffix}",
        "app": f"flowdesk_app_{suffix}",
    }
    await _run_sql(url, documented_sql("roles-as-admin"), **names)
    owner_url = as_role(url, names["owner"])
    await _run_sql(owner_url, documented_sql("roles-as-owner"), **names)
    try:
        yield owner_url, as_role(url, names["app"])
    finally:
        await _run_sql(
            server_url,
            [
                f'DROP DATABASE IF EXISTS "{names["database"]}" WITH (FORCE)',
                f"DROP ROLE IF EXISTS {names['app']}",
                f"DROP ROLE IF EXISTS {names['owner']}",
            ],
        )


async def test_the_runtime_role_with_dml_grants_only_serves(
    roles: tuple[str, str], tmp_path: Path
) -> None:
    owner_url, app_url = roles
    runtime = Settings(
        database_url=app_url,
        migration_database_url=owner_url,
        data_dir=tmp_path,
        seed_demo=False,
        relay_poll_seconds=0,
        quota_check_seconds=0,
        timer_tick_seconds=0,
    )
    # Not migrated yet: a serve that does not migrate refuses to start, and says why.
    no_migrations = runtime.model_copy(update={"auto_migrate": False})
    with pytest.raises(SystemExit):
        await asyncio.to_thread(prepared_database, no_migrations)
    # `flowdesk migrate` as the job runs it: the migration role's URL alone (an embedded server
    # cannot start either: its data directory cannot be made). Then the check passes.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDESK_")}
    env |= {"FLOWDESK_MIGRATION_DATABASE_URL": owner_url, "FLOWDESK_DATA_DIR": "/dev/null/x"}
    done = await asyncio.to_thread(
        subprocess.run,
        [FLOWDESK, "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert await asyncio.to_thread(prepared_database, no_migrations) == app_url

    # The runtime role can change no schema ...
    conn = await asyncpg.connect(asyncpg_dsn(app_url))
    try:
        for ddl in ("CREATE TABLE intruder (id int)", "DROP TABLE tickets", "TRUNCATE tickets"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(ddl)
    finally:
        await conn.close()

    # ... and serves: a tenant made, tickets created, changed and listed as that role.
    tenant = await licensed_tenant(app_url)
    app = create_app(no_migrations)
    async with app.router.lifespan_context(app), client_of(app) as client:
        r = await client.post("/v1/tickets", json=TICKET, headers=tenant.headers)
        assert r.status_code == 201, r.text
        ticket = r.json()
        r = await client.patch(
            f"/v1/tickets/{ticket['id']}",
            json={"priority": "HIGH"},
            headers={**tenant.headers, "If-Match": r.headers["etag"]},
        )
        assert r.status_code == 200, r.text
        r = await client.get("/v1/tickets", headers=tenant.headers)
        assert r.status_code == 200 and len(r.json()["items"]) == 1
        assert (await client.get("/readyz")).status_code == 200


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize("enabled", [True, False])
async def test_the_docs_can_be_turned_off(settings: Settings, enabled: bool) -> None:
    app = create_app(settings.model_copy(update={"docs_enabled": enabled}))
    async with app.router.lifespan_context(app), client_of(app) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await client.get(path)).status_code == (200 if enabled else 404), path
        assert (await client.get("/healthz")).status_code == 200
    # `flowdesk openapi` builds the document either way.
    assert app.openapi()["info"]["title"] == "flowdesk"


def _pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_the_lock_agrees_with_pyproject_and_constraints() -> None:
    """requirements.lock (`make lock-hashes`) holds every runtime dependency at the version of
    constraints.txt, each with its hashes: regenerate it when either changes."""
    lock = ROOT / "requirements.lock"
    locked = _pins(lock)
    constrained = _pins(ROOT / "constraints.txt")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for dependency in project["dependencies"]:
        name = canonicalize_name(Requirement(dependency).name)
        assert name in locked, f"{name} is not in requirements.lock: run `make lock-hashes`"
    drifted = {
        name: (version, constrained[name])
        for name, version in locked.items()
        if name in constrained and constrained[name] != version
    }
    assert not drifted, f"requirements.lock differs from constraints.txt: {drifted}"
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text(encoding="utf-8"))
    unhashed = [e.split()[0] for e in entries if "==" in e.split()[0] and "--hash=" not in e]
    assert not unhashed, unhashed


def test_the_image_pins_its_base_and_installs_by_hash() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    bases = re.findall(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert len(bases) == 1 and re.search(r"@sha256:[0-9a-f]{64}$", bases[0]), bases
    froms = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert froms and set(froms) == {"${BASE_IMAGE}"}, froms
    assert "pip install --require-hashes --no-deps -r requirements.lock" in dockerfile
    # The runtime user owns nothing it runs: no COPY hands it files.
    assert "--chown" not in dockerfile
    assert re.search(r"^USER flowdesk$", dockerfile, re.MULTILINE)
