"""Settings: one pydantic-settings class, read from the environment (prefix FLOWDESK_)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from flowdesk.origins import normalise_origins


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWDESK_", extra="ignore")

    # None means "start the embedded PostgreSQL in data_dir" (development and tests);
    # production sets a postgresql+asyncpg:// URL.
    database_url: str | None = None
    # The role that owns the schema, for `flowdesk migrate` (and the start-up migration) only;
    # unset: database_url migrates too. The runtime role then needs DML grants only
    # (docs/deployment.md, "Database roles").
    migration_database_url: str | None = None
    # Whether `serve` and the other commands upgrade the schema before they work. False in a
    # deployment whose migrations run as a job of their own (`flowdesk migrate`): `serve` then
    # only checks that the schema is not behind this release, and refuses to start if it is.
    auto_migrate: bool = True
    data_dir: Path = Path(".flowdesk")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: str = "info"
    # uvicorn's line per request. Off by default: a balancer or ingress usually logs requests,
    # and on a busy worker the line costs measurable time (see bench/). Every log line carries
    # the request id either way.
    access_log: bool = False
    # FastAPI's native OpenTelemetry (request spans, metrics, logs) through the process's
    # global providers, for a deployment that configures an OpenTelemetry SDK. Off by
    # default: flowdesk configures none, and FastAPI asks the providers on every request
    # whether one appeared (about 2% of a ticket request's CPU, bench/request_cpu.py).
    opentelemetry: bool = False

    # Values files merged over the shipped workflows.yaml (comma-separated in the environment).
    workflow_files: Annotated[list[Path], NoDecode] = Field(default_factory=list)

    # Connections of the process's one pool (flowdesk.db.pool) per worker.
    db_pool_size: int = Field(default=20, ge=1)
    # A request waits at most this long for a pooled connection before answering 503:
    # an unreachable database must fail fast, not pile requests up.
    db_pool_timeout: float = Field(default=2.0, gt=0)
    db_connect_timeout: float = Field(default=2.0, gt=0)
    db_statement_timeout_ms: int = Field(default=15_000, ge=0)
    # What stands between the pool and PostgreSQL. `pgbouncer` (transaction pooling): no
    # prepared-statement cache (a server connection is shared between clients, so a named
    # statement may not be there on the next transaction) and no startup parameters PgBouncer
    # refuses (jit, statement_timeout: set them on the role instead, docs/scaling.md).
    database_pooler: Literal["none", "pgbouncer"] = "none"
    # asyncpg's cache of prepared statements per connection; unset: 100 directly, 0 behind a
    # pooler (PgBouncer >= 1.21 with max_prepared_statements may take it back up).
    database_statement_cache_size: int | None = Field(default=None, ge=0)
    # The LISTEN connection's own URL, straight to PostgreSQL (a transaction pooler cannot
    # keep a LISTEN); unset: database_url.
    listen_database_url: str | None = None

    # How long cached API keys and licences are trusted while the process hears PostgreSQL's
    # access-change notifications (flowdesk.db.listener): any change reaches every worker's
    # caches within milliseconds of its commit, so this only bounds memory of idle keys.
    access_cache_seconds: float = Field(default=300.0, ge=0)
    # The listener proves it hears (a marker NOTIFY sent through the pool must come back on its
    # connection) on connecting and this often; a marker missing after the timeout sends the
    # caches back to their short TTLs and the listener reconnects (flowdesk.db.listener).
    listener_heartbeat_seconds: float = Field(default=30.0, gt=0)
    listener_marker_timeout_seconds: float = Field(default=5.0, gt=0)
    # How long a verified API key is trusted while the notifications are not heard (the
    # listening connection is down): a revocation takes effect within this many seconds.
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    # Well-formed keys that open nothing, per client address and process: past this many in a
    # window, the address gets 429 without a lookup until the window ends.
    auth_failure_limit: int = Field(default=100, ge=1)
    auth_failure_window_seconds: float = Field(default=60.0, gt=0)
    # last_used_at is noted at most this often per key, never on every request, and the noted
    # uses are written in one statement this often (and at shutdown), off the request path.
    key_touch_interval_seconds: int = Field(default=60, ge=1)
    key_use_flush_seconds: float = Field(default=10.0, gt=0)

    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Idle keep-alive connections are kept this long; above the usual load balancer's idle
    # timeout (60 s), so that the balancer, not the server, closes them and no request is lost
    # to a connection closed under it.
    keepalive_seconds: int = Field(default=75, ge=1)
    # Slow and huge clients (docs/deployment.md; a reverse proxy in front is still expected).
    # Per worker: requests beyond this many open connections or tasks get uvicorn's 503.
    limit_concurrency: int = Field(default=1000, ge=1)
    # A request's line and header fields: at most this many bytes and fields (else 431).
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    max_header_fields: int = Field(default=100, ge=1)
    # A request's line and headers must be in within this many seconds of the connection's
    # opening or of the request's first byte: a silent connection is closed, a trickle is 408.
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    # The request body must be in within this many seconds of its headers (else 408).
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    # The peers whose X-Forwarded-For and X-Forwarded-Proto are believed (the reverse proxy):
    # comma-separated addresses or networks, "*" for any (only behind a private network).
    forwarded_allow_ips: str = "127.0.0.1,::1"
    # Log lines as text or as one JSON object per line.
    log_format: Literal["text", "json"] = "text"
    # GET /metrics (Prometheus) with `Authorization: Bearer` the metrics token or the
    # platform token; off by default. Pool gauges are sampled this often per worker.
    metrics_enabled: bool = False
    metrics_token: SecretStr | None = None
    metrics_sample_seconds: float = Field(default=5.0, gt=0)
    # Expired Idempotency-Key records (kept 24 h) are deleted this often (0: never).
    idempotency_purge_seconds: float = Field(default=600.0, ge=0)
    # How long an Idempotency-Key claim is its request's alone before a retry may take it over
    # (unset: derived from the statement and pool timeouts, flowdesk.idempotency.repository.lease).
    idempotency_lease_seconds: float | None = Field(default=None, gt=0)
    # Redis shared by replicas for rate limits (redis://host:6379/0); unset: in-process limits.
    redis_url: str | None = None

    # The platform operator's credential for /platform/v1 (`Authorization: Bearer …`). Unset:
    # the platform API answers 503. Only its SHA-256 is kept once the app is built.
    platform_token: SecretStr | None = None
    # How long a tenant's licence, flags and rate-limit policy are trusted from memory while the
    # notifications are not heard; a change takes effect within this many seconds.
    licence_cache_seconds: float = Field(default=5.0, ge=0)
    # The default rate limit per API key, for tenants without a policy of their own.
    rate_limit_requests: int = Field(default=600, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    # Every first-party key's budget (the SPAs' sign-ins, operators' tools): the tenant's
    # licence sets its public keys' (above), never these.
    first_party_rate_limit_requests: int = Field(default=1200, ge=1)
    first_party_rate_limit_window_seconds: int = Field(default=60, ge=1)
    # A tenant's aggregate budget per channel (first-party, public) is this many keys' worth:
    # minting keys does not multiply what a tenant may send (flowdesk.usage.ratelimit).
    tenant_rate_limit_factor: int = Field(default=10, ge=1)
    # Path prefixes the rate limits apply to (comma-separated in the environment): both APIs,
    # so that every key is limited on the channel it was issued for.
    rate_limit_paths: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["/public/", "/v1/"]
    )
    # Path prefixes whose requests are metered (per key, day, endpoint family, status class).
    metered_paths: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["/public/", "/v1/"]
    )
    # Usage counts are kept in memory and written in one batch this often (and at shutdown).
    usage_flush_seconds: float = Field(default=10.0, gt=0)
    # API usage days and e-mail months older than this are deleted, in bounded batches, this
    # often (0: never) (flowdesk.usage.retention).
    usage_retention_days: int = Field(default=400, ge=1)
    usage_purge_seconds: float = Field(default=3600.0, ge=0)
    # The background quota check runs this often in each process (0: never); an advisory lock
    # lets one process at a time do it.
    quota_check_seconds: float = Field(default=300.0, ge=0)
    # Due timers of the catalog (a status's `timeout`) are looked for this often in each
    # process (0: never); the due rows are claimed, so the processes never move one twice.
    timer_tick_seconds: float = Field(default=60.0, ge=0)
    # Due SLA marks (reminders, warnings, breaches and their actions) are looked for this
    # often in each process (0: never); due clocks are claimed, so each mark is done once.
    sla_tick_seconds: float = Field(default=60.0, ge=0)
    # Notifications (flowdesk.notifications). Mails go through this SMTP server
    # (smtp://user:pass@host:587?starttls=true, smtps://…:465); unset, they are written to the
    # Maildir data_dir/mail, which `flowdesk mail list` reads.
    smtp_url: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    # Connections each relay keeps to the SMTP server, sending side by side.
    smtp_connections: int = Field(default=4, ge=1, le=32)
    # The From of every notification mail; a tenant may give it its own display name.
    mail_from: str = "flowdesk <flowdesk@localhost>"
    # Where people open a ticket (the agent and desk SPAs): mails link to
    # {portal_url}/tickets/{number}. Unset: mails carry no link.
    portal_url: str | None = None
    # The relay in each serve process (and `flowdesk worker`) looks for new outbox messages
    # and due deliveries this often when idle (0: this process does not relay).
    relay_poll_seconds: float = Field(default=0.5, ge=0)
    relay_batch_size: int = Field(default=100, ge=1, le=10_000)
    # A claimed delivery whose worker died comes due again after this long: longer than a send
    # can take (the SMTP and webhook timeouts).
    delivery_lease_seconds: float = Field(default=120.0, gt=0)
    # Failed sends are retried with exponential back-off (base doubling up to the cap, with
    # jitter) until this many hours after the message; then the delivery is `failed`.
    delivery_retry_hours: float = Field(default=24.0, gt=0)
    delivery_retry_base_seconds: float = Field(default=30.0, gt=0)
    delivery_retry_max_seconds: float = Field(default=3600.0, gt=0)
    # Settled deliveries and relayed outbox messages are deleted after this many days.
    notification_retention_days: float = Field(default=30.0, gt=0)
    notification_purge_seconds: float = Field(default=3600.0, ge=0)
    # Webhooks: loopback, private and link-local addresses are refused unless this is set
    # (development and tests); an endpoint failing this long is disabled and its admins told.
    webhook_allow_private: bool = False
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)
    webhook_disable_after_hours: float = Field(default=72.0, gt=0)

    # CORS (flowdesk.api.cors): the browser origins (scheme://host[:port], comma-separated in
    # the environment) whose SPAs may call flowdesk whatever the tenant; each tenant may allow
    # more of its own (PATCH /v1/tenant, allowed_origins).
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Live updates (GET /v1/events/stream): a comment is sent this often on an idle stream, so
    # that proxies keep it open and a dead client is noticed; and at most this many streams
    # per API key (or token) per process, beyond which a new one is refused with 429.
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0)
    stream_max_per_key: int = Field(default=5, ge=1)

    # Attachments (flowdesk.attachments): at most this many bytes per file and per ticket (all
    # its files together), else 413; an upload's body must be in within the timeout (else
    # 408). Uploads are streamed, outside the JSON body limit (max_body_bytes).
    attachment_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    attachment_ticket_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    attachment_timeout_seconds: float = Field(default=300.0, gt=0)
    # An S3-compatible bucket for attachments' bytes; unset: they are kept in PostgreSQL.
    # Credentials come from the environment as boto3 reads them (AWS_ACCESS_KEY_ID, …).
    attachment_s3_bucket: str | None = None
    attachment_s3_endpoint_url: str | None = None
    attachment_s3_region: str | None = None

    # Seeds a demo tenant (and prints its admin key) on an empty embedded database.
    seed_demo: bool = True
    # The interactive OpenAPI docs (/docs, /redoc) and the document (/openapi.json). A
    # production deployment may turn them off: the document is published with the release
    # (openapi/openapi.json), and the pages load their scripts from a CDN.
    docs_enabled: bool = True
    # On SIGTERM, requests in flight get this long to finish before they are cancelled; then the
    # usage counts are flushed and the pool closed. Keep it a few seconds under the container's
    # stop grace period (Docker's default is 10 s: `--stop-timeout`/`stop_grace_period`;
    # Kubernetes' terminationGracePeriodSeconds is 30 s), see docs/deployment.md.
    shutdown_timeout_seconds: float = Field(default=20.0, gt=0)

    @field_validator("rate_limit_paths", "metered_paths", mode="before")
    @classmethod
    def _split_prefixes(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        return normalise_origins(value)

    @field_validator("workflow_files", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        if isinstance(value, str):
            from flowdesk.workflow.loader import split_workflow_files

            return [Path(p) for p in split_workflow_files(value)]
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
