"""The nginx configuration of docs/deployment.md: valid (`nginx -t`), and in front of a real
`flowdesk serve` it proxies, refuses what flowdesk would refuse, and streams Server-Sent
Events unbuffered. Skipped where nginx is not installed."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, start_serve, stop, wait_healthy
from tests.support import TenantCtx

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"

pytestmark = pytest.mark.skipif(
    not Path(NGINX).exists(), reason="nginx is not installed (apt-get install nginx-light)"
)


def documented_config() -> str:
    match = re.search(r"```nginx\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match, "docs/deployment.md has no nginx block"
    return match.group(1)


def nginx_conf(directory: Path, listen: int, upstream: int) -> Path:
    """The documented server block in a minimal main configuration, on test ports."""
    site = documented_config()
    site = site.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen};")
    temp = directory / "temp"
    temp.mkdir(exist_ok=True)
    conf = directory / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
master_process off;
pid {directory}/nginx.pid;
error_log {directory}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{site}
}}
"""
    )
    return conf


def test_the_documented_configuration_is_valid(tmp_path: Path) -> None:
    conf = nginx_conf(tmp_path, free_port(), free_port())
    checked = subprocess.run(
        [NGINX, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr


@pytest.fixture(scope="module")
def proxied(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("proxy")
    upstream, listen, log = free_port(), free_port(), directory / "serve.log"
    serve = start_serve(
        upstream,
        log,
        FLOWDESK_DATABASE_URL=database_url,
        FLOWDESK_DATA_DIR=str(directory / "data"),
        FLOWDESK_SEED_DEMO="false",
        FLOWDESK_RELAY_POLL_SECONDS="0",
        FLOWDESK_STREAM_HEARTBEAT_SECONDS="0.5",
    )
    nginx = subprocess.Popen(
        [NGINX, "-c", str(nginx_conf(directory, listen, upstream)), "-p", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(serve, upstream, log)
        base = f"http://127.0.0.1:{listen}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert nginx.poll() is None, (directory / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx never proxied /healthz"
            time.sleep(0.1)
        yield base
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        stop(serve)


def test_requests_pass_with_nginx_request_id(proxied: str) -> None:
    r = httpx.get(f"{proxied}/readyz")
    assert r.status_code == 200
    # The id nginx made ($request_id) is the one flowdesk logged and echoes.
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


def test_large_bodies_and_the_metrics_stop_at_nginx(proxied: str) -> None:
    r = httpx.post(f"{proxied}/v1/users", content=b"x" * (65 * 1024))
    assert r.status_code == 413
    assert httpx.get(f"{proxied}/metrics").status_code == 404


def test_events_stream_through_unbuffered(proxied: str, tenant: TenantCtx) -> None:
    """The opening `retry:` and a heartbeat arrive while the stream is open: nginx passes
    each as it comes rather than holding them in its buffers."""
    with (
        httpx.Client(timeout=10) as client,
        client.stream("GET", f"{proxied}/v1/events/stream", headers=tenant.headers) as response,
    ):
        assert response.status_code == 200
        received = b""
        for chunk in response.iter_raw():
            received += chunk
            if b": keep-alive" in received:
                break
    assert received.startswith(b"retry:")
