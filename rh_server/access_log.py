"""The access log: one JSON line per request saying who called what, how it ended and how long
it took. Never a token, an argument, a query string or a body: a line holds the time, the
caller's address, who the caller is (``owner``, a granted token's user and id, a short hash of a
token a plugin accepted, or ``anonymous``), the method, the path, the status and the duration.

It is written to ``$RH_HOME/server/<cluster>/access.log`` (mode 0600) through a buffer flushed
every second and when the server stops, so the hot path does not wait on the disk; past
:data:`ROTATE_BYTES` the file moves to ``access.log.1``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from rh_server.auth import ANONYMOUS, Caller
from rh_server.web import client_address

ROTATE_BYTES = 64 << 20


class AccessLog:
    def __init__(self, path: Path | None, fronted: bool = False):
        self.path, self.fronted = path, fronted
        self._file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._open()

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(self.path, 0o600)  # also when it existed with other modes
        self._file = os.fdopen(fd, "a", buffering=1 << 16)

    def write(self, scope: dict, status: int, started: float) -> None:
        """Record one request (``started`` from ``time.perf_counter()``)."""
        if self._file is None:
            return
        caller: Caller = scope.get("rh.caller") or ANONYMOUS
        entry = {"time": round(time.time(), 3), "client": client_address(scope, self.fronted),
                 "caller": "owner" if caller.kind == "owner" else (caller.user or caller.kind),
                 "method": scope.get("method"), "path": scope.get("path"), "status": status,
                 "ms": round((time.perf_counter() - started) * 1000, 2)}
        if caller.token_id:
            entry["token_id"] = caller.token_id
        self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def flush(self) -> None:
        if self._file is None:
            return
        self._file.flush()
        try:
            if os.path.getsize(self.path) > ROTATE_BYTES:
                self._file.close()
                os.replace(self.path, f"{self.path}.1")
                self._open()
        except OSError:
            pass

    async def flush_every(self, seconds: float = 1.0) -> None:
        """Flush the buffer every ``seconds`` until cancelled."""
        while True:
            await asyncio.sleep(seconds)
            self.flush()

    def close(self) -> None:
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None
