"""Running calls: from a request's header and body to an env worker and back, in each mode.

Modes (query parameters, all optional): ``rh_async=1`` keeps the result on the cluster and
answers a run key at once; ``rh_stream=1`` streams logs (and generator items) while the call runs;
``rh_enqueue=1`` runs the call after every earlier enqueued call of the same name; ``rh_map=1``
takes a multi-part body of pickled chunks and spreads them over the env's workers.

The :class:`Dispatcher` owns what calls share beyond one request: the calls running now
(:class:`~rh_server.active.ActiveCalls`, which a cancel reaches), the order of enqueued calls
and the background tasks of async runs. It reads the served names' pools
(:class:`~rh_server.served.Served`) and the run store (:class:`~rh_server.runs.RunStore`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from typing import AsyncIterator

from rh_core.transport import wire
from rh_server import protocol as P
from rh_server.active import Active, ActiveCalls
from rh_server.objects import ObjectStore
from rh_server.process import CallCancelled, WorkerDied
from rh_server.runs import Run, RunStore
from rh_server.served import Served
from rh_server.web import HTTPProblem, error_body, error_from_parts


class Dispatcher:
    """Sends calls to env workers in each mode; keeps the order of enqueued calls and the
    background tasks of async runs."""

    def __init__(self, served: Served, runs: RunStore, objects: ObjectStore):
        self.served, self.runs, self.objects = served, runs, objects
        #: name -> the future of the last enqueued call of that name (``rh_enqueue``).
        self.tails: dict[str, asyncio.Future] = {}
        self.tasks: set[asyncio.Task] = set()
        self.active = ActiveCalls()

    def spawn(self, coro) -> asyncio.Task:
        """Run ``coro`` in the background, keeping a reference until it is done."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def ref_parts(self, refs: list[str]) -> list[bytes]:
        """Results of earlier ``.remote()`` runs passed as arguments, waited for here, and objects
        put on the cluster (``obj:KEY``)."""
        out = []
        for key in refs:
            if key.startswith("obj:"):
                out.append(self._object(key[4:]))
                continue
            run = self.runs.get(key)
            if run is None:
                raise HTTPProblem(404, "run_not_found",
                                  f"argument run {key!r} is not on this cluster: it was deleted, or "
                                  f"the server restarted since it ran")
            await run.done.wait()
            if run.error is not None:
                raise HTTPProblem(424, "run_failed", f"argument run {key!r} failed: "
                                  f"{run.error[0]['type']}: {run.error[0]['message']}")
            if run.ser != "pickle":
                raise HTTPProblem(400, "bad_request", f"run {key!r} holds a JSON result; only "
                                  f"pickled results can be passed as arguments")
            out.append(run.result)
        return out

    def _object(self, key: str) -> bytes:
        stored = self.objects.get(key)
        if stored is None:
            raise HTTPProblem(404, "object_not_found", f"argument object: key {key} not found on "
                              f"this cluster (put it with cluster.put first)")
        if stored.ser != "pickle":
            raise HTTPProblem(400, "bad_request", f"object {key!r} holds JSON; only pickled "
                              f"objects can be passed as arguments")
        return stored.data

    def _crashed(self, res: dict, e: WorkerDied) -> tuple[bytes, list]:
        self.spawn(self._restart(res))
        return _error("worker_crashed", "rh_core.errors.WorkerCrashedError", str(e))

    async def _prepare(self, res: dict, header: dict, body):
        refs = await self.ref_parts(header["refs"]) if "refs" in header else ()
        pool = await self.served.ready_pool(res)
        return pool.pick(res["name"]), [self._header_bytes(header), body, b"", *refs]

    @staticmethod
    def _header_bytes(header: dict) -> bytes:
        """A call's header as the worker reads it; the same few headers recur call after call,
        so each is encoded once (one with a list in it, a map's offsets, each time)."""
        try:
            return _encoded_header(tuple(header.items()))
        except TypeError:  # unhashable
            return P.jpart(header)

    async def collect(self, res: dict, header: dict, body, active: Active
                      ) -> tuple[bytes, list]:
        """Run a call to its end (the hot path): the final ``(kind, parts)``; errors as ERROR."""
        try:
            worker, parts = await self._prepare(res, header, body)
            return await worker.ask(P.CALL, parts, active.targets)
        except HTTPProblem as e:
            return _error(e.kind, "rh_core.errors.ServerError", e.message)
        except WorkerDied as e:
            return self._crashed(res, e)
        except CallCancelled as e:
            return _cancelled(active, e)

    async def execute(self, res: dict, header: dict, body, active: Active) -> AsyncIterator:
        """Yield every ``(kind, parts)`` answer of the worker for one call (logs, items, result)."""
        try:
            worker, parts = await self._prepare(res, header, body)
            async for kind, got in worker.request(P.CALL, parts, active.targets):
                yield kind, got
        except HTTPProblem as e:
            yield _error(e.kind, "rh_core.errors.ServerError", e.message)
        except WorkerDied as e:
            yield self._crashed(res, e)
        except CallCancelled as e:
            yield _cancelled(active, e)

    async def _restart(self, res: dict) -> None:
        """Start the crashed worker again, in the env as it is now: when the crash was its
        env being replaced, the new pool is left as it is."""
        try:
            await self.served.ready_pool(res)
        except Exception:  # noqa: BLE001 - the next call reports it
            pass

    async def in_order(self, name: str, coro_fn):
        """Run ``coro_fn()`` after every earlier enqueued call of ``name`` finished (FIFO)."""
        prev = self.tails.get(name)
        mine = asyncio.get_running_loop().create_future()
        self.tails[name] = mine
        try:
            if prev is not None:
                await asyncio.wait([prev])
            return await coro_fn()
        finally:
            mine.set_result(None)
            if self.tails.get(name) is mine:
                del self.tails[name]

    async def run_to_store(self, run: Run, res, header, body, enqueue: bool,
                           authenticated: bool, active: Active) -> None:
        async def go():
            async for kind, got in self.execute(res, header, body, active):
                if kind == P.LOG:
                    await run.add_log(json.loads(bytes(got[0])))
                elif kind == P.RESULT:
                    await run.finish(b"".join(got), None)
                elif kind == P.ERROR:
                    await run.finish(None, error_from_parts(got, authenticated))

        try:
            await (self.in_order(res["name"], go) if enqueue else go())
        except asyncio.CancelledError:  # cancelled before it started (enqueued, waiting)
            if not run.done.is_set():
                await run.finish(None, error_from_parts(_cancelled(active)[1], False))
        finally:
            self.active.end(active, run.status)

    async def run_map(self, res: dict, header: dict, body, active: Active, on_log=None
                      ) -> tuple[bytes, list]:
        """Spread pickled chunks over the env's workers; answer their results in input order.
        With ``on_log``, the items' output is handed to it as it comes (streamed maps)."""
        try:
            chunks = wire.unpack_parts(body)
        except ValueError as e:
            raise HTTPProblem(400, "bad_request", f"bad map body: {e}") from None
        refs = await self.ref_parts(header.get("refs") or [])
        pool = await self.served.ready_pool(res)
        offsets = header.get("offsets") or [0] * len(chunks)
        if os.environ.get("RH_RAY_ADDRESS") and res.get("kind") == "function":
            # A cluster of several nodes: one worker drives Ray tasks over every node's CPUs.
            h = dict(header, offsets=offsets, ray={"env": res["env"]})
            try:
                return await _ask(pool.pick(res["name"]), [P.jpart(h), body, b"", *refs], active,
                                  on_log)
            except WorkerDied as e:
                return self._crashed(res, e)
            except CallCancelled as e:
                return _cancelled(active, e)
        limit = asyncio.Semaphore(max(1, pool.slots()))

        async def one(i, chunk):
            async with limit:
                h = dict(header, offset=offsets[i] if i < len(offsets) else 0)
                worker = pool.pick(res["name"])
                if active.cancelled:
                    return _cancelled(active)
                try:
                    return await _ask(worker, [P.jpart(h), chunk, b"", *refs], active, on_log)
                except WorkerDied as e:
                    return self._crashed(res, e)
                except CallCancelled as e:
                    return _cancelled(active, e)

        answers = await asyncio.gather(*(one(i, c) for i, c in enumerate(chunks)))
        for kind, got in answers:
            if kind == P.ERROR:
                return kind, got
        return P.RESULT, wire.pack_parts([b"".join(got) for _, got in answers])

    async def stream_frames(self, res, header, body, authenticated: bool, enqueue: bool,
                            active: Active, mapped: bool = False):
        """Bytes of a streaming response: frames for pickle callers, NDJSON for JSON callers.
        A caller that goes away cancels the call (the response stops, and with it the pump).
        ``mapped``: a map, whose items' output comes first and its packed results last."""
        queue: asyncio.Queue = asyncio.Queue()
        status = ["running"]

        async def answers():
            if mapped:
                got = await self.run_map(res, header, body, active,
                                         on_log=lambda parts: queue.put_nowait((P.LOG, parts)))
                yield got
                return
            async for item in self.execute(res, header, body, active):
                yield item

        async def pump():
            try:
                async for item in answers():
                    if item[0] in (P.RESULT, P.ERROR):
                        status[0] = "done" if item[0] == P.RESULT else "error"
                    await queue.put(item)
            finally:
                await queue.put(None)

        task = self.spawn(self.in_order(res["name"], pump) if enqueue else pump())
        as_json = (header.get("out") or header["ser"]) == "json"
        try:
            while (item := await queue.get()) is not None:
                kind, got = item
                if kind == P.LOG:
                    yield (b'{"log":' + bytes(got[0]) + b"}\n") if as_json else _frame(wire.LOG, got)
                elif kind == P.ITEM:
                    yield (b'{"item":' + b"".join(got) + b"}\n") if as_json else _frame(wire.ITEM, got)
                elif kind == P.RESULT:
                    yield (b'{"result":' + (b"".join(got) or b"null") + b"}\n") if as_json else \
                        _frame(wire.RESULT, got)
                elif kind == P.ERROR:
                    err = json.dumps(error_body(*error_from_parts(got, authenticated))).encode()
                    yield (err + b"\n") if as_json else b"".join(wire.frame(wire.ERROR, err))
        finally:
            if not task.done():
                task.cancel()
            self.active.end(active, status[0])


def _error(kind: str, type_name: str, message: str) -> tuple[bytes, list]:
    return P.ERROR, [P.jpart({"type": type_name, "message": message, "traceback": "",
                              "kind": kind})]


async def _ask(worker, parts: list, active: Active, on_log) -> tuple[bytes, list]:
    """A MAP message's final answer; its LOG answers go to ``on_log`` when there is one."""
    if on_log is None:
        return await worker.ask(P.MAP, parts, active.targets)
    async for kind, got in worker.request(P.MAP, parts, active.targets):
        if kind == P.LOG:
            on_log(got)
        elif kind in (P.RESULT, P.ERROR):
            return kind, got
    raise WorkerDied("the worker ended the map without an answer")


def _cancelled(active: Active, e: CallCancelled | None = None) -> tuple[bytes, list]:
    why = active.cancelled or (str(e) if e else "cancelled")
    return _error("cancelled", "rh_core.errors.RunCancelledError",
                  f"run {active.key!r} was cancelled ({why})")


def _frame(kind: bytes, parts: list) -> bytes:
    payload = b"".join(parts)
    return wire.FRAME_HEAD.pack(kind, len(payload)) + payload


@functools.lru_cache(maxsize=256)
def _encoded_header(items: tuple) -> bytes:
    return P.jpart(dict(items))
