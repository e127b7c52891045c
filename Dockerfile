# Production image: no embedded PostgreSQL inside (set FLOWDESK_DATABASE_URL), pinned
# dependencies, a non-root user. `flowdesk serve` applies migrations before it serves.
FROM python:3.11-slim AS build
WORKDIR /build
RUN python -m venv /opt/flowdesk
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN /opt/flowdesk/bin/pip install --no-cache-dir --disable-pip-version-check -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home --home-dir /app flowdesk
COPY --from=build /opt/flowdesk /opt/flowdesk
WORKDIR /app
COPY --chown=flowdesk:flowdesk migrations ./migrations
COPY --chown=flowdesk:flowdesk workflows.yaml ./workflows.yaml
USER flowdesk
ENV PATH=/opt/flowdesk/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    FLOWDESK_HOST=0.0.0.0 \
    FLOWDESK_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
# Migrations first (explicitly, so a failure stops the container before it listens), then serve.
CMD ["sh", "-c", "flowdesk migrate && exec flowdesk serve"]
