"""Where a worker's time goes under load: py-spy samples one flowdesk worker while wrk drives
it, and the collapsed stacks are summed per function (self and total) and per library."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")
# Top-level modules grouped into the areas the report names.
AREAS = {
    "pydantic_core": "pydantic",
    "httptools": "uvicorn/httptools",
    "uvicorn": "uvicorn/httptools",
    "uvloop": "asyncio/uvloop",
    "asyncio": "asyncio/uvloop",
    "greenlet": "sqlalchemy",
}


def py_spy_binary() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def _split(frame: str) -> tuple[str, str]:
    """'execute (sqlalchemy/orm/session.py:123)' -> ('execute', 'sqlalchemy/orm/session.py')."""
    match = _FRAME.match(frame)
    if not match:
        return frame, ""
    path = match["file"]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return match["func"], path


def _short(frame: str) -> str:
    func, path = _split(frame)
    return f"{path}:{func}" if path else func


def _area(frame: str) -> str:
    _, path = _split(frame)
    top = path.split("/", 1)[0].removesuffix(".py") if path else "(native)"
    return AREAS.get(top, top)


def summarise(collapsed: Path, top: int = 30) -> dict[str, Any]:
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        stack, count = match[1], int(match[2])
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        samples += count
        # Skip the process/thread header frames py-spy may put first.
        self_time[_short(frames[-1])] += count
        areas[_area(frames[-1])] += count
        for name in {_short(f) for f in frames}:
            total_time[name] += count
    if not samples:
        return {"samples": 0, "top": [], "areas": {}}
    pct = 100.0 / samples
    ranked = sorted(total_time, key=lambda k: (-self_time[k], -total_time[k]))[:top]
    return {
        "samples": samples,
        "top": [
            {"frame": k, "self_pct": self_time[k] * pct, "total_pct": total_time[k] * pct}
            for k in ranked
        ],
        # flowdesk's own functions by inclusive time: where a fix in flowdesk would land.
        "flowdesk_total": [
            {"frame": k, "total_pct": v * pct, "self_pct": self_time[k] * pct}
            for k, v in total_time.most_common()
            if k.startswith("flowdesk/")
        ][:top],
        "areas": _areas(areas, samples),
    }


def _areas(areas: Counter[str], samples: int) -> dict[str, float]:
    """Share of samples per library (by leaf frame); those under 1% summed as "other"."""
    out: dict[str, float] = {}
    other = 0.0
    for name, count in areas.most_common():
        share = 100.0 * count / samples
        if share >= 1.0:
            out[name] = round(share, 1)
        else:
            other += share
    out["other"] = round(other, 1)
    return out


def record(pid: int, seconds: int, out: Path, *, delay: float = 2.0) -> threading.Thread:
    """Start py-spy on `pid` after `delay` seconds (for `seconds`), in a thread; writes the
    collapsed stacks to `out`."""
    binary = py_spy_binary()
    if binary is None:
        raise RuntimeError("py-spy is not installed (BENCH_PROFILE=1 make bench installs it)")

    def run() -> None:
        threading.Event().wait(delay)
        subprocess.run(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(seconds),
                "--rate",
                "200",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(out),
            ],
            capture_output=True,
            check=False,
            timeout=seconds + 60,
        )

    thread = threading.Thread(target=run, name="py-spy", daemon=True)
    thread.start()
    return thread
