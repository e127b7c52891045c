# Production image: no embedded PostgreSQL inside (set FLOWDESK_DATABASE_URL); the base image
# pinned by digest; every dependency installed by hash from requirements.lock; the code, the
# migrations and the workflow catalog owned by root and read-only to the runtime user, which
# writes only its data directory. docs/deployment.md: the database roles, the stop timeout, a
# read-only root filesystem.
#
# The digest is refreshed by `make pin-base-image` (docker buildx imagetools inspect on the
# tag), and the lock by `make lock-hashes`.
ARG BASE_IMAGE=python:3.11-slim@sha256:be1575ed968de893bd54f4c56315ff7c4736ce522c1bca08fd521731aafc0d76

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /build
RUN python -m venv /opt/flowdesk
# The lock is complete (its resolver ran over every dependency): --no-deps resolves nothing
# more, --require-hashes refuses any file whose hash it does not list.
COPY requirements.lock ./
RUN /opt/flowdesk/bin/pip install --require-hashes --no-deps -r requirements.lock
# flowdesk itself, built by the locked setuptools: no build isolation, so nothing unhashed is
# fetched for the build either.
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/flowdesk/bin/pip install --no-deps --no-index --no-build-isolation . \
 && /opt/flowdesk/bin/pip check

FROM ${BASE_IMAGE}
# The runtime user owns nothing but its data directory (the Maildir when no SMTP server is set,
# the Prometheus files of several workers).
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin flowdesk \
 && install -d -o flowdesk -g flowdesk -m 0750 /var/lib/flowdesk
# Root-owned, not writable by the runtime user: the installed code (byte-compiled at install,
# so nothing is written at run time) ...
COPY --from=build /opt/flowdesk /opt/flowdesk
WORKDIR /app
# ... the migrations and the workflow catalog (./workflows.yaml is the one loaded).
COPY migrations ./migrations
COPY workflows.yaml ./workflows.yaml
RUN chmod -R go-w /opt/flowdesk /app
USER flowdesk
ENV PATH=/opt/flowdesk/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLOWDESK_HOST=0.0.0.0 \
    FLOWDESK_PORT=8000 \
    FLOWDESK_DATA_DIR=/var/lib/flowdesk
EXPOSE 8000
# SIGTERM starts the graceful shutdown: requests in flight get FLOWDESK_SHUTDOWN_TIMEOUT_SECONDS
# (20) to finish. Give the container a longer grace period than that (`docker run
# --stop-timeout 30`, compose `stop_grace_period: 30s`; Docker's default is 10 s).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
# `serve` upgrades the schema before it listens (a failure stops the container first), unless
# FLOWDESK_AUTO_MIGRATE=false: then a job runs `flowdesk migrate` as the migration role, and
# serve only checks that the schema is not behind (docs/deployment.md, "Database roles").
CMD ["flowdesk", "serve"]
