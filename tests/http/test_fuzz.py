"""An independent fuzzer over the whole API (issue 16): Schemathesis, in process over ASGI,
every operation of the OpenAPI document, all its checks, as an admin, as a requester and
with no key, then its stateful phase following the document's links.

Bounded so that it stays a test (about a minute on two cores): a few examples per operation
and phase, a fixed seed (a failure reproduces; FLOWDESK_FUZZ_SEED picks another,
FLOWDESK_FUZZ_EXAMPLES more examples), and a time limit per run. The app is one of its own on
the test database, its lifespan run by Schemathesis's event loop thread; the people are made
through the session's app first.

A failing check prints each failure with its curl command. The checks tuned (`CHECKS`, and
for one operation `OPERATIONS`) and the operations left out (`LEFT_OUT`) say why beside each.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI, Response
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.engine.recorder import ScenarioRecorder
from schemathesis.python import asgi
from schemathesis.schemas import BaseSchema

from flowdesk.app import create_app
from flowdesk.config import Settings
from tests.support import PLATFORM_TOKEN, Member, TenantCtx, new_tenant

SEED = int(os.environ.get("FLOWDESK_FUZZ_SEED", "16"))
EXAMPLES = int(os.environ.get("FLOWDESK_FUZZ_EXAMPLES", "3"))
# How long each run may take at most, as a multiple of its own budget below (Schemathesis
# stops there and the test warns how far it got): more on a faster or a quieter machine.
TIME_SCALE = float(os.environ.get("FLOWDESK_FUZZ_TIME_SCALE", "1"))

# Checks tuned, each with its reason (every other check runs with Schemathesis's defaults).
CHECKS: dict[str, dict[str, Any]] = {
    # 413 is a rejection too: a body over FLOWDESK_MAX_BODY_BYTES (64 KiB) is refused before
    # it is read, whatever the schema's longest strings would allow.
    "negative_data_rejection": {
        "expected-statuses": [
            "400",
            "401",
            "403",
            "404",
            "405",
            "406",
            "409",
            "413",
            "415",
            "422",
            "428",
            "429",
            "5xx",
        ]
    },
    # A valid-shaped body may name what does not exist (a catalog item, a user, a group
    # picked by the generator): 422 says which, as 404 would for a path. Still caught: a
    # valid request answered 400, 405, 413 or 415.
    "positive_data_acceptance": {
        "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
    },
}
# (`max_response_time` is off unless given a bound: latency is bench/'s to measure.)

# Checks tuned for one operation, each with its reason.
OPERATIONS: list[dict[str, Any]] = [
    # DELETE of an API key revokes it: the key stays readable by id and in the list, showing
    # its `revoked_at`, because the audit needs to know which key did what and which key made
    # which (`created_by_key_id`); a second DELETE is 204 again (GitLab's personal access
    # tokens behave the same). Schemathesis' use-after-free check expects a 404 instead.
    {"include-path": "/v1/api-keys/{key_id}", "checks": {"use_after_free": {"enabled": False}}},
]

# Operations left out, each with its reason.
LEFT_OUT: dict[str, str] = {
    # An endless event stream: the harness can end it only by cancelling the app, which the
    # shutdown middleware (flowdesk.api.shutdown) takes for the server's shutdown deadline.
    # tests/http/test_stream.py covers it against real servers.
    "/v1/events/stream": "an endless stream, ended only by cancelling the app",
}


@dataclass(frozen=True)
class Identity:
    """Who Schemathesis calls as: a key per API (first-party, public) and the platform token."""

    name: str
    first_party: str | None
    public: str | None
    platform: str | None

    def token(self, path: str) -> str | None:
        if path.startswith("/platform/"):
            return self.platform
        return self.public if path.startswith("/public/") else self.first_party


@pytest.fixture(scope="module")
async def identities(app: FastAPI) -> dict[str, Identity]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://flowdesk.test") as client:
        return await _identities(app, client)


async def _identities(app: FastAPI, client: httpx.AsyncClient) -> dict[str, Identity]:
    tenant: TenantCtx = await new_tenant(app, client)
    requester: Member = await tenant.user("tickets:create", name="Fuzz Requester")
    admin_public = await tenant.key(
        tenant.admin.id, ["tickets:read", "tickets:write"], channel="public"
    )
    requester_public = await tenant.key(
        requester.id, ["tickets:read", "tickets:write"], channel="public"
    )
    return {
        "admin": Identity("admin", tenant.admin.key, admin_public, PLATFORM_TOKEN),
        "requester": Identity("requester", requester.key, requester_public, None),
        "nobody": Identity("nobody", None, None, None),
    }


@pytest.fixture(scope="module")
def fuzz_app(settings: Settings) -> Iterator[FastAPI]:
    """The app under test, started by Schemathesis (its lifespan in Schemathesis's loop);
    limits high enough that the fuzzer's volume is not what gets refused."""
    app = create_app(
        settings.model_copy(
            update={
                "rate_limit_requests": 1_000_000,
                "first_party_rate_limit_requests": 1_000_000,
                # A generated webhook URL is tried for real by POST /v1/webhooks/{id}/test.
                "webhook_timeout_seconds": 0.5,
            }
        )
    )
    yield app
    asgi.shutdown_lifespans()


@dataclass(frozen=True)
class Run:
    """One Schemathesis run: who calls, which phases, how many examples per operation, and
    the seconds it may take (times TIME_SCALE)."""

    who: str
    phases: tuple[str, ...]
    examples: int
    seconds: int


# Every operation is fuzzed as each identity; the admin's run also takes the coverage phase
# (boundary and negative values, unexpected methods); the stateful phase follows the links
# as the admin (the one who can create what the links lead to).
RUNS = {
    "admin": Run("admin", ("examples", "coverage", "fuzzing"), EXAMPLES, 25),
    "requester": Run("requester", ("examples", "fuzzing"), EXAMPLES, 12),
    "nobody": Run("nobody", ("fuzzing",), 1, 6),
    "stateful": Run("admin", ("stateful",), EXAMPLES, 12),
}
_PHASES = ("examples", "coverage", "fuzzing", "stateful")


def _config(run: Run) -> SchemathesisConfig:
    phases: dict[str, Any] = {name: {"enabled": name in run.phases} for name in _PHASES}
    phases["stateful"]["max-steps"] = 10
    # Two unexpected methods (the document's own are covered anyway): enough to check 405 and
    # its Allow field on every path, at a fraction of the default eight.
    phases["coverage"]["unexpected-methods"] = ["PUT", "TRACE"]
    phases["coverage"]["generate-duplicate-query-parameters"] = False
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "max-time": max(1, round(run.seconds * TIME_SCALE)),
            "suppress-health-check": ["all"],
            "generation": {"max-examples": run.examples, "database": "none"},
            "checks": CHECKS,
            "operations": OPERATIONS,
            "phases": phases,
        }
    )


def _failures(recorder: ScenarioRecorder) -> Iterator[str]:
    for nodes in recorder.checks.values():
        for node in nodes:
            info = node.failure_info
            if info is not None:
                failure = info.failure
                # A stateful failure's steps, oldest first; else the one request.
                steps = "\n".join(f"    {step.curl}" for step in info.steps)
                yield (
                    f"[{node.name}] {failure.title}: {failure.message}\n"
                    f"{steps or '    ' + info.code_sample}"
                )


@dataclass
class Outcome:
    failures: list[str]
    operations: set[str]
    stop_reason: str
    total: int = 0


def _run(app: FastAPI, run: Run, identity: Identity) -> Outcome:
    schema: BaseSchema = schemathesis.openapi.from_asgi("/openapi.json", app, config=_config(run))
    for path in LEFT_OUT:
        schema = schema.exclude(path=path)

    class Bearer:
        """The identity's credential for the operation's API (none: no header)."""

        def get(self, case: Any, context: Any) -> str | None:
            return identity.token(context.operation.path)

        def set(self, case: Any, data: str | None, context: Any) -> None:
            if data is not None:
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    schema.auth(refresh_interval=None)(Bearer)
    outcome = Outcome([], set(), "?", sum(1 for _ in schema.get_all_operations()))
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            outcome.failures += _failures(event.recorder)
            if event.recorder.cases:
                outcome.operations.add(event.recorder.label)
        elif isinstance(event, events.NonFatalError):
            outcome.failures.append(f"[error] {event.label}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            outcome.failures.append(f"[fatal] {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            outcome.failures += [f"[after run] {f.title}: {f.message}" for f in event.failures]
            outcome.stop_reason = str(event.stop_reason)
    outcome.failures = sorted(set(outcome.failures))
    return outcome


@pytest.mark.parametrize("run", list(RUNS))
def test_the_fuzzer_finds_nothing(
    run: str, identities: dict[str, Identity], fuzz_app: FastAPI
) -> None:
    outcome = _run(fuzz_app, RUNS[run], identities[RUNS[run].who])
    failures = outcome.failures
    assert not failures, f"{len(failures)} failures ({run}):\n" + "\n".join(failures)
    if "stateful" not in RUNS[run].phases and len(outcome.operations) < outcome.total:
        # A slow or busy machine: what ran passed, but not every operation ran.
        warnings.warn(
            f"fuzz run {run!r} stopped ({outcome.stop_reason}) after {len(outcome.operations)} "
            f"of {outcome.total} operations; FLOWDESK_FUZZ_TIME_SCALE gives it longer",
            stacklevel=1,
        )


def test_the_harness_reports_what_schemathesis_finds() -> None:
    """A failure of the app under test is a failure of this test (it can fail)."""
    broken = FastAPI()

    @broken.get("/v1/broken")
    async def broken_route() -> Response:
        return Response(b"Internal Server Error", status_code=500)

    outcome = _run(broken, Run("nobody", ("fuzzing",), 1, 3), Identity("x", None, None, None))
    assert any(f.startswith("[not_a_server_error]") for f in outcome.failures), outcome
