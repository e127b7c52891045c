"""The CLI against the test database: tenants create, keys create, migrate, openapi."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support import bearer

FLOWDESK = str(Path(sys.executable).with_name("flowdesk"))


def run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDESK_")}
    env["FLOWDESK_DATABASE_URL"] = database_url
    return subprocess.run([FLOWDESK, *args], env=env, capture_output=True, text=True, timeout=120)


async def test_tenants_and_keys_from_the_command_line(
    database_url: str, client: httpx.AsyncClient
) -> None:
    done = run(database_url, "tenants", "create", "acme-cli", "--name", "Acme", "--prefix", "ACME")
    assert done.returncode == 0, done.stderr
    admin_key = re.search(r"^FLOWDESK_ADMIN_KEY=(fdk_\w+)$", done.stdout, re.MULTILINE)
    assert admin_key
    me = (await client.get("/v1/me", headers=bearer(admin_key.group(1)))).json()
    assert me["tenant"]["slug"] == "acme-cli"

    again = run(database_url, "tenants", "create", "acme-cli", "--name", "Acme")
    assert again.returncode == 1 and "already exists" in again.stderr
    bad = run(database_url, "tenants", "create", "Bad Slug!", "--name", "x")
    assert bad.returncode == 1 and "invalid input" in bad.stderr

    key = run(
        database_url,
        "keys",
        "create",
        "--tenant",
        "acme-cli",
        "--user",
        me["user"]["email"],
        "--scopes",
        "tickets:read",
    )
    assert key.returncode == 0, key.stderr
    r = await client.get("/v1/me", headers=bearer(key.stdout.strip()))
    assert r.status_code == 200 and r.json()["scopes"] == ["tickets:read"]
    # A key for the public API works there, not on /v1.
    public = run(
        database_url,
        *("keys", "create", "--tenant", "acme-cli", "--user", me["user"]["email"]),
        *("--scopes", "tickets:read", "--channel", "public"),
    )
    assert public.returncode == 0, public.stderr
    r = await client.get("/v1/me", headers=bearer(public.stdout.strip()))
    assert r.status_code == 403 and r.json()["type"] == "/problems/key-channel"
    assert (
        run(
            database_url,
            "keys",
            "create",
            "--tenant",
            "nope",
            "--user",
            "x@y.z",
            "--scopes",
            "admin",
        ).returncode
        == 1
    )
    assert (
        run(
            database_url,
            "keys",
            "create",
            "--tenant",
            "acme-cli",
            "--user",
            "x@y.z",
            "--scopes",
            "root",
        ).returncode
        == 1
    )


def test_migrate_is_idempotent(database_url: str) -> None:
    done = run(database_url, "migrate")
    assert done.returncode == 0, done.stderr


def test_openapi_check_detects_drift(database_url: str, tmp_path: Path) -> None:
    target = tmp_path / "openapi.json"
    assert run(database_url, "openapi", "--output", str(target)).returncode == 0
    document = json.loads(target.read_text())
    assert "/v1/me" in document["paths"]
    assert run(database_url, "openapi", "--output", str(target), "--check").returncode == 0
    target.write_text("{}\n")
    assert run(database_url, "openapi", "--output", str(target), "--check").returncode == 1


def test_serve_refuses_a_broken_catalog(database_url: str, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(
        "workflows:\n  - name: broken\n    transitions:\n      - {from: OPEN, to: NOWHERE}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDESK_")}
    env |= {"FLOWDESK_DATABASE_URL": database_url, "FLOWDESK_WORKFLOW_FILES": str(values)}
    done = subprocess.run(
        [FLOWDESK, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert f"{values}:4:" in done.stderr and "NOWHERE" in done.stderr
    assert "not starting" in done.stderr
