"""The server's idle rule: how long since it last worked for a caller, and stopping itself after
``--autostop-mins`` of that.

Work is any request but ``/health`` (a monitor polling health must not keep a cluster up), and
every call still running in the background (async runs, enqueued calls). The server counts
idleness from the moment the last piece of work ended; while anything runs it is not idle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from rh_server.active import ActiveCalls

log = logging.getLogger("rh_server")


class Idle:
    """Requests in flight and when the last one ended, beside the calls running now."""

    def __init__(self, active: ActiveCalls, clock: Callable[[], float] = time.monotonic) -> None:
        self._active = active
        self._clock = clock
        self.in_flight = 0
        self._last = clock()

    def enter(self) -> None:
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        self._last = self._clock()

    @property
    def calls_running(self) -> int:
        """Calls running now, in every mode (plain, streamed, async runs, maps)."""
        return len(self._active.calls)

    def idle_seconds(self) -> float:
        """Seconds since the server last worked for a caller (0 while it works)."""
        if self.in_flight or self._active.calls:
            self._last = self._clock()
            return 0.0
        return max(0.0, self._clock() - self._last)


async def autostop(idle: Idle, minutes: float, stop: asyncio.Event, on_idle: Callable[[float], None]
                   ) -> None:
    """Set ``stop`` once the server has been idle for ``minutes``, after ``on_idle(seconds)``
    (the plugins' ``rh_server_idle``; what it raises is logged and does not keep the server up)."""
    limit = minutes * 60
    every = min(10.0, max(0.2, limit / 20))
    while not stop.is_set():
        await asyncio.sleep(every)
        seconds = idle.idle_seconds()
        if seconds >= limit:
            log.info("rh server idle for %.0f s (autostop after %s min): stopping", seconds,
                     f"{minutes:g}")
            try:
                on_idle(seconds)
            except Exception:  # noqa: BLE001 - documented: logged, the server stops anyway
                log.exception("a plugin's rh_server_idle failed")
            stop.set()
            return
