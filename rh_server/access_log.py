"""The access log: one JSON line per request saying who called what, how it ended and how long
it took. Never a token, an argument, a query string or a body: a line holds the time, the
caller's address, who the caller is (``owner``, a granted token's user and id, a short hash of a
token a plugin accepted, or ``anonymous``), the method, the path, the status and the duration.

It is written to ``$RH_HOME/server/<cluster>/access.log`` (mode 0600) every second and when the
server stops: a request only notes its few fields, and the lines are formatted and written at
the flush, so the hot path neither formats nor waits on the disk; past
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
        #: requests not written yet: (time, client, caller, method, path, status, seconds)
        self._pending: list[tuple] = []
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._open()

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.chmod(self.path, 0o600)  # also when it existed with other modes
        self._file = os.fdopen(fd, "a", buffering=1 << 16)

    def write(self, scope: dict, status: int, started: float) -> None:
        """Record one request (``started`` from ``time.perf_counter()``). Only what the line
        needs is kept here; the line is written at the next flush, off the request's path."""
        if self._file is None:
            return
        caller: Caller = scope.get("rh.caller") or ANONYMOUS
        self._pending.append((time.time(), client_address(scope, self.fronted), caller,
                              scope.get("method"), scope.get("path"), status,
                              time.perf_counter() - started))
        if len(self._pending) >= 10_000:  # a burst: memory stays bounded between flushes
            self._file.write(self._lines())

    def _lines(self) -> str:
        """The pending requests as lines of JSON, written without building a dict per line."""
        out = []
        for when, client, caller, method, path, status, seconds in self._pending:
            who = "owner" if caller.kind == "owner" else (caller.user or caller.kind)
            line = (f'{{"time":{when:.3f},"client":{_text(client)},"caller":{_text(who)},'
                    f'"method":{_text(method)},"path":{_text(path)},"status":{int(status)},'
                    f'"ms":{seconds * 1000:.2f}')
            if caller.token_id:
                line += f',"token_id":{_text(caller.token_id)}'
            out.append(line + "}\n")
        self._pending.clear()
        return "".join(out)

    def flush(self) -> None:
        if self._file is None:
            return
        if self._pending:
            self._file.write(self._lines())
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
