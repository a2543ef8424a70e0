"""Stopping a call in an env worker: the worker's side of ``handle.cancel()``.

A call's interruptible parts (running the user's function, each step of its generator, waiting
for its coroutine) run inside :meth:`Running.region`. A cancel then reaches the call where it
is: a coroutine's task is cancelled on the worker's event loop; Python code running in a thread
gets :class:`RunCancelled` raised at its next bytecode (``PyThreadState_SetAsyncExc``). Code
blocked inside C (``time.sleep``, a socket read) only sees it when that returns: the server
replaces the worker when a cancelled call does not end within its grace period. Outside a
region (encoding the result, writing to the server) nothing is ever interrupted, so a cancel
never leaves a half-written message.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ctypes
import threading
from typing import Iterator

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)


class RunCancelled(BaseException):
    """Raised in the call that was cancelled. A ``BaseException``, like ``KeyboardInterrupt``,
    so that user code's ``except Exception`` does not swallow it."""

    _rh_kind = "cancelled"


class Running:
    """The calls of one worker that may be interrupted now, by request id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: rid -> [thread ident, coroutine future or None, async exception set]
        self._calls: dict[int, list] = {}
        #: rids cancelled before they started (or while between regions), oldest first
        self._cancelled: dict[int, None] = {}

    @contextlib.contextmanager
    def region(self, rid: int | None) -> Iterator[None]:
        """Run the body interruptibly for ``rid``."""
        entry = self.enter(rid)
        try:
            yield
        finally:
            self.leave(rid, entry)

    def enter(self, rid: int | None) -> list | None:
        """Start an interruptible region for ``rid`` in this thread (what :meth:`region` does,
        for the hot path without a context manager); pass what it returns to :meth:`leave`."""
        if rid is None:
            return None
        with self._lock:
            if rid in self._cancelled:
                raise RunCancelled("the run was cancelled")
            entry = self._calls[rid] = [threading.get_ident(), None, False]
        return entry

    def leave(self, rid: int | None, entry: list | None) -> None:
        if entry is None:
            return
        with self._lock:
            self._calls.pop(rid, None)
            if entry[2]:  # set but perhaps not raised yet: it must not fire outside
                _clear(entry[0])

    def wait(self, rid: int | None, future: concurrent.futures.Future):
        """The result of a coroutine running on the worker's loop; cancelled with the call."""
        with self._lock:
            entry = self._calls.get(rid)
            if entry is not None:
                entry[1] = future
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise RunCancelled("the run was cancelled") from None

    def cancel(self, rid: int) -> None:
        """Stop the call ``rid`` where it is (or as soon as it starts)."""
        with self._lock:
            self._cancelled[rid] = None
            if len(self._cancelled) > 10_000:
                del self._cancelled[next(iter(self._cancelled))]
            entry = self._calls.get(rid)
            if entry is None:
                return
            ident, future, already = entry
            if future is not None:
                future.cancel()
            elif not already:
                entry[2] = True
                _set_async_exc(ident, RunCancelled)

    def finish(self, rid: int) -> None:
        """The call ``rid`` ended: forget that it was cancelled."""
        if not self._cancelled:  # the usual case; a cancel arriving after the end is harmless
            return
        with self._lock:
            self._cancelled.pop(rid, None)


def _clear(ident: int) -> None:
    _set_async_exc(ident, ctypes.py_object())  # a NULL exception clears a pending one
