"""The notification tests' world: a real SMTP server, and an app of their own (on a database of
its own) whose relay sends to it quickly, with short retries and leases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from flowdesk.app import create_app
from flowdesk.config import Settings
from flowdesk.db import migrate
from tests.notifications.smtp import Handler, SmtpServer
from tests.sql import fetchval
from tests.support import TenantCtx, new_tenant

MAIL_FROM = "Example Desk <desk@example.com>"
PORTAL = "https://desk.example.com"


@pytest.fixture(scope="module")
async def mailer() -> AsyncIterator[SmtpServer]:
    server = SmtpServer(Handler())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def notify_settings(
    create_database: Callable[[], str],
    settings: Settings,
    mailer: SmtpServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    url = create_database()
    migrate.upgrade(url)
    return settings.model_copy(
        update={
            "database_url": url,
            "data_dir": tmp_path_factory.mktemp("notify"),
            "smtp_url": SecretStr(mailer.url()),
            "smtp_timeout_seconds": 2.0,
            "mail_from": MAIL_FROM,
            "portal_url": PORTAL,
            "relay_poll_seconds": 0.05,
            "delivery_retry_base_seconds": 0.05,
            "delivery_retry_max_seconds": 0.2,
            "delivery_lease_seconds": 2.0,
            "webhook_allow_private": True,
            "webhook_timeout_seconds": 2.0,
        }
    )


@pytest.fixture(scope="module")
async def app(notify_settings: Settings) -> AsyncIterator[FastAPI]:
    """Overrides the suite's app: this one relays."""
    application = create_app(notify_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def quiet_tenant(app: FastAPI, client: httpx.AsyncClient) -> TenantCtx:
    """A tenant whose licence has e-mail notifications off."""
    return await new_tenant(app, client, flags={"email_notifications": False})


# How long a test waits for the relay before it fails (generous: the machine is shared).
PATIENCE = 20.0


async def until(condition: Callable[[], bool]) -> None:
    """Wait for the relay (running in the app's lifespan) to make `condition` true."""
    # Polled: what it waits for happens in a server or the database, not on an Event.
    async with asyncio.timeout(PATIENCE):
        while True:
            if condition():
                return
            await asyncio.sleep(0.02)


async def settled(app: FastAPI, tenant_id: uuid.UUID) -> None:
    """Wait until the tenant has no message left to relay and no delivery pending."""
    async with asyncio.timeout(PATIENCE):
        while True:
            pending = await fetchval(
                app,
                "SELECT (SELECT count(*) FROM outbox WHERE tenant_id = $1 AND delivered_at IS NULL)"
                " + (SELECT count(*) FROM deliveries WHERE tenant_id = $1 AND state = 'pending')",
                tenant_id,
            )
            if not pending:
                return
            await asyncio.sleep(0.05)


def maildir(settings: Settings) -> Path:
    return settings.data_dir / "mail"
