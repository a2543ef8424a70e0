"""One env worker process: starting it, its two sockets, the calls in flight to it, stopping
a call in it, and what its end does to them. :mod:`rh_server.pool` keeps an env's processes.

Messages go on ``conn``, the worker's socket read by its threads in turn; a call sent while the
worker's lane is free goes on ``lane`` instead, read by one thread of its own, so that the call
wakes no thread but the one that runs it. Every answer comes back on ``conn``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import socket
from pathlib import Path
from typing import AsyncIterator

from rh_server import protocol as P
from rh_server.channel import WorkerProtocol
from rh_server.slots import Slots

log = logging.getLogger("rh_server")

_rids = itertools.count(1)


#: How long a cancelled call may take to stop before its worker is replaced.
CANCEL_GRACE = 0.5


class WorkerDied(Exception):
    """The worker process ended while requests were pending."""


class EnvReplaced(WorkerDied):
    """The env's pool was replaced (its settings changed) while this pool's workers started."""


class CallCancelled(Exception):
    """The call was cancelled (``handle.cancel()``, a timeout, or its caller went away)."""


def describe_exit(code: int | None) -> str:
    if code is None:
        return "is gone"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class WorkerProcess:
    """One worker process of an env and the socket to it."""

    def __init__(self, env_key: str, index: int, python: str, env_vars: dict, cwd: str | None,
                 threads: int, log_path: Path):
        self.env_key, self.index = env_key, index
        self.python, self.env_vars, self.cwd, self.threads = python, env_vars, cwd, threads
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.pending: dict[int, asyncio.Queue] = {}
        self.alive = False
        self.restarts = 0
        self.conn: WorkerProtocol | None = None
        #: The lane: calls sent while no other runs on it go to a worker thread that reads only
        #: them, so no other thread wakes for them (answers come back on ``conn``).
        self.lane: WorkerProtocol | None = None
        #: The request id of the call on the lane now (None: the lane is free)
        self.lane_rid: int | None = None
        self.slots = Slots(0)
        self._reader_task: asyncio.Task | None = None
        #: rid -> why, for cancelled calls whose end the worker has not answered yet
        self.cancelling: dict[int, str] = {}
        self._killed_for: str | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    async def start(self) -> None:
        if self._reader_task is not None and not self._reader_task.done():
            # The process before this one was killed (a stuck cancel) and its end is not handled
            # yet: its calls fail with why, before anything of the new process exists.
            await asyncio.gather(self._reader_task, return_exceptions=True)
        self._killed_for = None
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        lane, lane_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        env.pop("RH_SERVER_TOKEN", None)
        env.update(self.env_vars)
        env["RH_ENV"] = self.env_key
        env["PYTHONUNBUFFERED"] = "1"
        if self.cwd:
            env["RH_WORKER_CWD"] = self.cwd
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "ab")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                self.python, "-m", "rh_server.worker", f"fd:{child.fileno()},{lane_child.fileno()}",
                str(self.threads + 1),  # a thread more than calls: one reads cancels
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                pass_fds=(child.fileno(), lane_child.fileno()), env=env,
            )
        except BaseException:
            parent.close()
            lane.close()
            raise
        finally:
            out.close()
            child.close()
            lane_child.close()
        loop = asyncio.get_running_loop()
        hello: asyncio.Future = loop.create_future()
        self._lost = loop.create_future()

        def on_message(kind, rid, parts):
            if not hello.done():
                hello.set_result(kind)
                return
            self._deliver(kind, rid, parts)

        def on_lost():
            if not self._lost.done():
                self._lost.set_result(None)
            if not hello.done():
                hello.set_exception(ConnectionResetError("worker closed its socket"))

        _, self.conn = await loop.create_unix_connection(
            lambda: WorkerProtocol(on_message, on_lost), sock=parent)
        self.lane_rid = None
        _, self.lane = await loop.create_unix_connection(
            lambda: WorkerProtocol(lambda *_: None, lambda: None), sock=lane)
        try:
            await asyncio.wait_for(hello, timeout=120)
        except (asyncio.TimeoutError, ConnectionError):
            await self.kill()
            raise WorkerDied(
                f"the worker for env {self.env_key!r} did not start; its log "
                f"({self.log_path}) ends with:\n{tail(self.log_path)}"
            ) from None
        self.slots = Slots(self.threads)
        self.alive = True
        self._reader_task = asyncio.create_task(self._watch())
        log.info("env %s worker %d started (pid %s)", self.env_key, self.index, self.pid)

    def _deliver(self, kind: bytes, rid: int, parts: list) -> None:
        if kind in (P.RESULT, P.ERROR):
            self.cancelling.pop(rid, None)
            if rid == self.lane_rid:
                self.lane_rid = None
            self.slots.answered(rid)
        waiter = self.pending.get(rid)
        if waiter is None:
            return
        if isinstance(waiter, asyncio.Future):
            if kind in (P.RESULT, P.ERROR) and not waiter.done():
                waiter.set_result((kind, parts))
        else:
            waiter.put_nowait((kind, parts))

    async def _watch(self) -> None:
        """When the socket closes: mark the worker dead and fail what was pending on it."""
        await self._lost
        self.alive = False
        code = await self.proc.wait() if self.proc else None
        how = describe_exit(code)
        log.warning("env %s worker %d (pid %s) %s", self.env_key, self.index, self.pid, how)
        self.slots.end()  # the calls waiting for a slot fail below
        self.lane_rid = None
        if self.lane is not None:
            self.lane.close()
        for waiter in list(self.pending.values()):
            if isinstance(waiter, asyncio.Future):
                if not waiter.done():
                    waiter.set_exception(self._died(how))
            else:
                waiter.put_nowait((None, how))
        self.pending.clear()

    def _died(self, how: str) -> WorkerDied:
        if self._killed_for:
            how = f"was replaced to stop {self._killed_for}"
        return WorkerDied(
            f"the worker process of env {self.env_key!r} {how} while running this call; it is "
            f"restarted for the next call"
        )

    def _check_alive(self) -> None:
        if not self.alive:
            raise WorkerDied(f"worker {self.index} of env {self.env_key!r} is not running")

    async def ask(self, kind: bytes, parts: list, ticket: list | None = None
                  ) -> tuple[bytes, list]:
        """Send one message and wait for its final RESULT or ERROR (other answers ignored)."""
        self._check_alive()
        rid = next(_rids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        if ticket is not None:
            ticket.append((self, rid))
        sent = False
        try:
            if kind not in _SLOTTED or await self.slots.take(rid):
                sent = True
                await self._send(kind, rid, parts)
            return await fut  # not sent: cancelled or the worker ended, which fut says
        except asyncio.CancelledError:
            if sent:
                self.cancel(rid, "a call whose caller went away")
            raise
        finally:
            self.pending.pop(rid, None)

    async def request(self, kind: bytes, parts: list, ticket: list | None = None
                      ) -> AsyncIterator[tuple[bytes, list]]:
        """Send one message and yield every answer (logs, items) until the final one.

        Raises :class:`WorkerDied` if the process ends first, :class:`CallCancelled` if the
        call is cancelled. ``ticket`` gets ``(worker, request id)`` for :meth:`cancel`.
        """
        self._check_alive()
        rid = next(_rids)
        q: asyncio.Queue = asyncio.Queue()
        self.pending[rid] = q
        if ticket is not None:
            ticket.append((self, rid))
        done = sent = False
        try:
            if kind not in _SLOTTED or await self.slots.take(rid):
                sent = True
                await self._send(kind, rid, parts)
            while True:  # (not sent: the queue says why, cancelled or the worker ended)
                k, got = await q.get()
                if k is None:
                    raise self._died(got)
                if k is _CANCELLED:
                    raise CallCancelled(got)
                done = k in (P.RESULT, P.ERROR)
                yield k, got
                if done:
                    return
        finally:
            self.pending.pop(rid, None)
            if not done and sent and rid not in self.cancelling and self.alive:
                self.cancel(rid, "a call whose caller went away")  # the stream was dropped

    async def _send(self, kind: bytes, rid: int, parts: list) -> None:
        if kind in _SLOTTED and self.lane_rid is None and self.lane is not None:
            self.lane_rid = rid  # free until this call's final answer (_deliver)
            await self.lane.send(kind, rid, parts)
        else:
            await self.conn.send(kind, rid, parts)

    def cancel(self, rid: int, why: str) -> None:
        """Stop the call ``rid``: its waiter gets :class:`CallCancelled` now; the worker is told
        to interrupt it, and replaced if the call has not ended after :data:`CANCEL_GRACE`."""
        waiter = self.pending.get(rid)
        if waiter is None and rid not in self.pending:
            pass  # already answered, or the caller is gone: the worker may still be running it
        elif isinstance(waiter, asyncio.Future):
            if not waiter.done():
                waiter.set_exception(CallCancelled(why))
        elif waiter is not None:
            waiter.put_nowait((_CANCELLED, why))
        if self.slots.drop(rid):  # not sent yet: it never will be, and the worker has
            return                # nothing to stop
        if rid in self.cancelling or not self.alive:
            return
        self.cancelling[rid] = why
        task = asyncio.ensure_future(self._send_cancel(rid))
        _background.add(task)
        task.add_done_callback(_background.discard)
        asyncio.get_running_loop().call_later(CANCEL_GRACE, self._replace_if_stuck, rid)

    async def _send_cancel(self, rid: int) -> None:
        try:
            await self.conn.send(P.CANCEL, rid, [])
        except ConnectionError:
            pass  # the worker is gone: nothing left to stop

    def _replace_if_stuck(self, rid: int) -> None:
        why = self.cancelling.pop(rid, None)
        if why is None or not self.alive or self.proc is None:
            return
        log.warning("env %s worker %d (pid %s) did not stop %s within %.1f s: replacing it",
                    self.env_key, self.index, self.pid, why, CANCEL_GRACE)
        self._killed_for = f"{why} that did not stop within {CANCEL_GRACE} s"
        self.alive = False  # no call goes to it from now on: the next one starts a new worker
        self.proc.kill()

    async def kill(self) -> None:
        self.alive = False
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        for conn in (self.conn, self.lane):
            if conn is not None:
                conn.close()
        if self._reader_task:
            await asyncio.gather(self._reader_task, return_exceptions=True)


#: Messages that run user code in a call thread of the worker: they take a slot.
_SLOTTED = (P.CALL, P.MAP)
#: Put in a stream's queue when its call is cancelled.
_CANCELLED = object()
#: Messages being sent in the background (kept referenced until sent).
_background: set[asyncio.Task] = set()


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
