"""Background jobs of a process: run a coroutine every so often until the lifespan ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)


class Periodic:
    """Runs `job` every `interval` seconds in a task of its own. A failing run is logged and
    the next one comes on schedule; jitter keeps replicas started together from waking in
    step. An interval of 0 disables the job."""

    def __init__(
        self,
        name: str,
        interval: float,
        job: Callable[[], Awaitable[object]],
        *,
        jitter: float = 0.1,
    ) -> None:
        self.name = name
        self._interval = interval
        self._job = job
        self._jitter = jitter
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            spread = random.uniform(1 - self._jitter, 1 + self._jitter)
            await asyncio.sleep(self._interval * spread)
            try:
                await self._job()
            except Exception:
                logger.warning("%s failed; retrying next interval", self.name, exc_info=True)
