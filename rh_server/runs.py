"""Runs: calls whose results are kept on the cluster (``.remote()`` handles) and their logs."""

from __future__ import annotations

import asyncio
import re
import secrets
import time

import attrs

RUN_KEY = re.compile(r"^[A-Za-z0-9_.@:\-]{1,200}$")


def new_run_key(name: str) -> str:
    return f"{name}@{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"


@attrs.define(eq=False)
class Run:
    key: str
    name: str
    method: str
    ser: str
    created: float = attrs.Factory(time.time)
    finished: float | None = None
    status: str = "running"
    result: bytes | None = None
    #: JSON error payload and pickled exception, when the call failed.
    error: tuple[dict, bytes | None] | None = None
    logs: list[dict] = attrs.Factory(list)
    done: asyncio.Event = attrs.Factory(asyncio.Event)
    changed: asyncio.Condition = attrs.Factory(asyncio.Condition)

    async def add_log(self, entry: dict) -> None:
        self.logs.append(entry)
        async with self.changed:
            self.changed.notify_all()

    async def finish(self, result: bytes | None, error: tuple[dict, bytes | None] | None) -> None:
        self.result, self.error = result, error
        if error is None:
            self.status = "done"
        else:
            self.status = "cancelled" if error[0].get("kind") == "cancelled" else "error"
        self.finished = time.time()
        self.done.set()
        async with self.changed:
            self.changed.notify_all()

    def summary(self) -> dict:
        return {
            "run_key": self.key, "name": self.name, "method": self.method, "kind": "run",
            "status": self.status, "created": self.created, "finished": self.finished,
            "duration": round((self.finished or time.time()) - self.created, 6),
            "result_bytes": len(self.result) if self.result is not None else None,
        }


class RunStore:
    """Runs by key, kept until deleted or the server stops."""

    def __init__(self) -> None:
        self.runs: dict[str, Run] = {}

    def add(self, run: Run) -> Run:
        self.runs[run.key] = run
        return run

    def get(self, key: str) -> Run | None:
        return self.runs.get(key)

    def delete(self, key: str) -> bool:
        return self.runs.pop(key, None) is not None
