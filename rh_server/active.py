"""Calls running now, and the last ones that ended: what ``cluster.runs()`` lists and what a
cancel stops.

Every call gets an :class:`Active` record while it runs, under a run key: the caller's
(``rh_run_key``, always given for ``.remote()`` runs and calls with a timeout) or one made
here. It knows the worker requests the call became, so that a cancel reaches them. A plain call
whose caller goes away (Ctrl-C, a killed client) is cancelled too: after a short while the call
starts watching its connection.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time

import attrs

#: A plain call starts watching for its caller going away after this many seconds (watching
#: costs a task; most calls are over sooner).
WATCH_AFTER = 0.05
#: How many ended calls ``cluster.runs()`` still lists.
RECENT = 200


@attrs.define(eq=False)
class Active:
    """One call running on this server."""

    key: str
    name: str
    method: str
    #: ``call``, ``stream``, ``map`` or ``run`` (kept on the cluster, ``.remote()``).
    mode: str
    started: float = attrs.Factory(time.time)
    #: ``(worker, request id)`` of each worker request the call became.
    targets: list = attrs.Factory(list)
    #: The task of a run, so that a run still waiting for its turn can be cancelled.
    task: asyncio.Task | None = None
    #: Why it was cancelled, once it was.
    cancelled: str | None = None
    #: The task that watches for the caller going away (plain calls that last).
    watcher: asyncio.Task | None = None

    def summary(self, status: str = "running", finished: float | None = None) -> dict:
        return {"run_key": self.key, "name": self.name, "method": self.method,
                "kind": self.mode, "status": status, "created": self.started,
                "finished": finished,
                "duration": round((finished or time.time()) - self.started, 6)}


class ActiveCalls:
    """The calls running now, by run key, and a short history of plain calls that ended (runs
    kept on the cluster are listed from the run store)."""

    def __init__(self) -> None:
        self.calls: dict[str, Active] = {}
        #: (call, status, when it ended) of the last plain calls that ended; listed as dicts
        self.recent: collections.deque[tuple] = collections.deque(maxlen=RECENT)
        self._n = itertools.count(1)

    def begin(self, name: str, method: str, mode: str, key: str | None = None) -> Active:
        key = key or f"{name}:{next(self._n)}"
        active = self.calls[key] = Active(key, name, method, mode)
        return active

    def end(self, active: Active, status: str) -> None:
        self.calls.pop(active.key, None)
        if active.mode != "run":
            if active.cancelled and status != "done":
                status = "cancelled"
            self.recent.append((active, status, time.time()))

    def taken(self, key: str) -> bool:
        return key in self.calls

    def cancel(self, key: str, why: str) -> bool:
        """Stop the call ``key`` if it runs; whether it did."""
        active = self.calls.get(key)
        if active is None or active.cancelled:
            return False
        active.cancelled = why
        for worker, rid in active.targets:
            worker.cancel(rid, why)
        if not active.targets and active.task is not None:
            active.task.cancel()  # still waiting for its turn (enqueued) or to start
        return True

    def watch(self, active: Active, receive) -> asyncio.TimerHandle:
        """After :data:`WATCH_AFTER`, cancel ``active`` when its caller goes away. Cancel the
        returned handle (and the task it may have started, kept on it) when the call ends."""
        return asyncio.get_running_loop().call_later(WATCH_AFTER, self._start_watching, active,
                                                     receive)

    def _start_watching(self, active: Active, receive) -> None:
        async def watch():
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    self.cancel(active.key, "a call whose caller went away")
                    return

        active.watcher = asyncio.ensure_future(watch())  # stop_watching ends it

    @staticmethod
    def stop_watching(active: Active, handle: asyncio.TimerHandle) -> None:
        handle.cancel()
        if active.watcher is not None:
            active.watcher.cancel()

    def listing(self) -> list[dict]:
        """Plain calls running now and the last that ended (runs are listed by the store)."""
        now = [a.summary() for a in self.calls.values() if a.mode != "run"]
        return [*(a.summary(status, ended) for a, status, ended in self.recent), *now]
