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
import os
import time
from json.encoder import encode_basestring_ascii
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
        who = "owner" if caller.kind == "owner" else (caller.user or caller.kind)
        # One JSON object per line, written without building a dict (one per request adds up).
        line = (f'{{"time":{time.time():.3f},"client":{_text(client_address(scope, self.fronted))},'
                f'"caller":{_text(who)},"method":{_text(scope.get("method"))},'
                f'"path":{_text(scope.get("path"))},"status":{int(status)},'
                f'"ms":{(time.perf_counter() - started) * 1000:.2f}')
        if caller.token_id:
            line += f',"token_id":{_text(caller.token_id)}'
        self._file.write(line + "}\n")

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


def _text(value) -> str:
    """A JSON string (or null) for the access log."""
    return "null" if value is None else encode_basestring_ascii(str(value))
