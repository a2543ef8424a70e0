"""What a call prints, in an env worker: ``sys.stdout`` and ``sys.stderr`` are replaced by
:class:`RunStream`, which sends the lines written during a call whose caller asked for logs to
that caller (tagged with the call's request id) and passes everything else to the real stream.
"""

from __future__ import annotations

import contextvars
import io
import threading
from typing import TYPE_CHECKING

from rh_server import protocol as P

if TYPE_CHECKING:
    from rh_server.worker import Worker

#: The request id of the call running in this thread (or task).
current_rid: contextvars.ContextVar[int | None] = contextvars.ContextVar("rh_rid", default=None)


class RunStream(io.TextIOBase):
    """Replaces sys.stdout/stderr: text written during a logged call goes to its caller."""

    def __init__(self, name: str, real, worker: Worker):
        self.name, self.real, self.worker = name, real, worker
        self._pending: dict[int, str] = {}
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        rid = current_rid.get()
        if rid is None or rid not in self.worker.logged:
            return self.real.write(s)
        with self._lock:
            text = self._pending.pop(rid, "") + s
            if "\n" not in text:
                self._pending[rid] = text
                return len(s)
            head, _, tail = text.rpartition("\n")
            if tail:
                self._pending[rid] = tail
        self.worker.conn.send(P.LOG, rid, [P.jpart({"stream": self.name, "text": head + "\n"})])
        return len(s)

    def flush_run(self, rid: int) -> None:
        with self._lock:
            text = self._pending.pop(rid, "")
        if text:
            self.worker.conn.send(P.LOG, rid, [P.jpart({"stream": self.name, "text": text})])

    def flush(self) -> None:
        self.real.flush()

    @property
    def encoding(self):  # noqa: D102
        return getattr(self.real, "encoding", "utf-8")

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.real.fileno()
