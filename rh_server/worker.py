"""An env worker: a process that imports and runs user code for one env.

The server starts it with ``python -m rh_server.worker fd:SOCKET,LANE THREADS`` (two sockets
it made: see :mod:`rh_server.process`); it says hello and then serves messages (see
:mod:`rh_server.protocol`). Calls run on its threads; coroutines run on one event loop thread;
``print`` output of a call whose caller asked for logs is sent back tagged with the call's
request id (:mod:`rh_server.output`).
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import pickle
import socket
import struct
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from rh_core.transport import wire
from rh_server import protocol as P
from rh_server.interrupt import RunCancelled, Running
from rh_server.loader import CodeLoader
from rh_server.members import ACCESSORS, member
from rh_server.output import RunStream, current_rid

if TYPE_CHECKING:  # asyncio loads when the first async function runs, not at every start
    import asyncio

NotFound = P.NotFound
#: The server's shared-memory folder: the only place argument buffers are taken from.
_SHM = os.environ.get("RH_SHM_DIR") or None


class Worker:
    def __init__(self, address: str, threads: int):
        #: the lane: calls the server sends while no other runs there, read by a thread of its
        #: own (see :meth:`serve`); every answer goes back on ``conn``
        self.lane: P.BlockingConn | None = None
        if address.startswith("fd:"):
            fds = [int(fd) for fd in address[3:].split(",")]
            sock = socket.socket(fileno=fds[0])
            if len(fds) > 1:
                self.lane = P.BlockingConn(socket.socket(fileno=fds[1]))
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(address)
        self.conn = P.BlockingConn(sock)
        self.objects: dict[str, object] = {}
        self.kinds: dict[str, str] = {}
        self.logged: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        self.loader = CodeLoader()
        #: name -> define spec (a map spread over Ray loads the target from it on each node)
        self.specs: dict[str, dict] = {}
        self.streams = [RunStream("stdout", sys.stdout, self), RunStream("stderr", sys.stderr, self)]
        self.running = Running()
        sys.stdout, sys.stderr = self.streams

    # ------------------------------------------------------------------ loop

    def serve(self, threads: int) -> None:
        """Leader/followers on the socket: each thread takes the read lock, reads one message,
        releases the lock (another thread starts reading) and handles the message itself, so a
        call never waits for a hand-off between threads. With a lane, one of the threads reads
        only the lane and runs its calls: a call there wakes no other thread."""
        self.conn.send(P.HELLO, 0, [P.jpart({"pid": os.getpid(), "python": sys.executable})])
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
        if self.lane is not None:
            threading.Thread(target=self._lane_loop, daemon=True, name="rh-lane").start()
            threads -= 1
        for i in range(threads - 1):
            threading.Thread(target=self._serve_loop, daemon=True, name=f"rh-call-{i}").start()
        self._serve_loop()

    def _serve_loop(self) -> None:
        while True:
            try:
                with self.conn.rlock:
                    kind, rid, parts = self.conn.recv()
            except (EOFError, OSError):
                os._exit(0)
            self._handle(kind, rid, parts)

    def _lane_loop(self) -> None:
        while True:
            try:
                kind, rid, parts = self.lane.recv()
            except (EOFError, OSError):
                os._exit(0)
            self._handle(kind, rid, parts)

    def _handle(self, kind, rid, parts) -> None:
        if kind in (P.CALL, P.MAP):
            self._run(kind, rid, parts)
        elif kind == P.DEFINE:
            self._reply(rid, self._define, parts)
        elif kind == P.DELETE:
            gone = json.loads(parts[0])["name"]
            self.objects.pop(gone, None)
            self.kinds.pop(gone, None)
            self.specs.pop(gone, None)
            self.conn.send(P.RESULT, rid, [])
        elif kind == P.CANCEL:
            self.running.cancel(rid)
        elif kind == P.SHUTDOWN:
            os._exit(0)

    def _reply(self, rid, fn, parts) -> None:
        try:
            fn(parts)
            self.conn.send(P.RESULT, rid, [])
        except BaseException as e:  # noqa: BLE001 - reported to the server
            self._send_error(rid, e, "define")

    # ------------------------------------------------------------------ define

    def _define(self, parts) -> None:
        spec = json.loads(parts[0])
        name, kind = spec["name"], spec["kind"]
        self.kinds[name] = kind
        self.specs[name] = spec
        if kind == "instance":
            cls = self.objects.get(spec["of"])
            if cls is None:
                cls = self.loader.load(spec)
            args, kwargs = wire.loads_pickle(parts[1]) if len(parts) > 1 else ((), {})
            self.objects[name] = cls(*args, **kwargs)
        else:
            self.objects[name] = self.loader.load(spec)

    # ------------------------------------------------------------------ calls

    def _target(self, name: str, method: str):
        obj = self.objects.get(name)
        if obj is None:
            raise NotFound(f"nothing named {name!r} in this env")
        kind = self.kinds[name]
        if kind == "function":
            if method != "call":
                raise NotFound(f"function {name!r} has only the method 'call', not {method!r}")
            return obj
        if method in ACCESSORS:
            return ACCESSORS[method](name, obj)
        if kind == "class":
            raw = inspect.getattr_static(obj, method, None)
            if isinstance(raw, (staticmethod, classmethod)) and not method.startswith("__"):
                return getattr(obj, method)
            raise NotFound(f"{name!r} is a class: create an instance first (RemoteClass(...)); "
                           f"only its classmethods and staticmethods are callable on it")
        return member(name, obj, method)

    def _run(self, kind, rid, parts) -> None:
        header = _call_header(bytes(parts[0])) if kind == P.CALL else json.loads(parts[0])
        token = current_rid.set(rid)
        nested = wire.NESTED_LOGS.set(bool(header.get("logs")))
        if header.get("logs"):
            self.logged.add(rid)
        try:
            refs = {k: parts[3 + i] for i, k in enumerate(header.get("refs", []))}
            if kind == P.MAP:
                self._map(rid, header, parts, refs)
            else:
                self._call(rid, header, parts, refs)
        except RunCancelled:
            self._flush(rid)
            self._send_error(rid, RunCancelled("the run was cancelled"), "cancelled")
        except BaseException as e:  # noqa: BLE001 - every failure goes back to the caller
            self._flush(rid)
            self._send_error(rid, e, getattr(e, "_rh_kind", "user"))
        finally:
            self.running.finish(rid)
            self.logged.discard(rid)
            wire.NESTED_LOGS.reset(nested)
            current_rid.reset(token)

    def _flush(self, rid) -> None:
        if rid in self.logged:  # only a logged call's output is held back
            for s in self.streams:
                s.flush_run(rid)


    def _args(self, header, body, refs):
        try:
            return self._decode_args(header, body, refs)
        except (pickle.UnpicklingError, ValueError, EOFError, RecursionError, struct.error) as e:
            raise _kind(ValueError(f"the arguments could not be decoded: {e}"), "bad_request") \
                from None

    def _decode_args(self, header, body, refs):
        ser = header["ser"]
        if ser == "pickle":
            resolved = {}

            def resolve(key):
                if key not in resolved:
                    resolved[key] = wire.loads_pickle(refs[key])
                return resolved[key]

            if not len(body):
                return (), {}
            return wire.loads_pickle(body, resolve if refs else None, shm=_SHM)
        data = json.loads(body) if len(body) else {}
        return data.get("args", []), data.get("kwargs", {})

    def _encode(self, ser: str, value, shm: str | None = None) -> list:
        try:
            if ser == "pickle":
                return wire.dumps_pickle(value, shm=shm)
            return [wire.dumps_json(value)]
        except Exception as e:
            hint = "; call it from Python (pickle) or return JSON types" if ser == "json" else ""
            err = wire.SerializationFailure(
                f"the result of type {wire.type_path(type(value))} could not be serialized with "
                f"{ser}: {e}{hint}"
            )
            err._rh_kind = "serialization"
            raise err from None

    def _invoke(self, fn, args, kwargs):
        rid = current_rid.get()
        entry = self.running.enter(rid)  # from here a cancel may stop the call
        try:
            result = fn(*args, **kwargs)
            if inspect.iscoroutine(result):
                import asyncio  # only for async code: not at every worker start

                future = asyncio.run_coroutine_threadsafe(result, self._event_loop())
                result = self.running.wait(rid, future)
        finally:
            self.running.leave(rid, entry)
        return result

    def _call(self, rid, header, parts, refs) -> None:
        ser, method = header.get("out") or header["ser"], header["method"]  # the answer's
        target = self._target_or_raise(header["name"], method)
        args, kwargs = self._args(header, parts[1], refs)
        if callable(target):
            value = self._invoke(target, args, kwargs)
        elif args or kwargs:
            raise TypeError(f"{header['name']}.{method} is an attribute, not a method")
        else:
            value = target
        if inspect.isgenerator(value) or inspect.isasyncgen(value):
            items = self._iterate(value)
            if header.get("stream"):
                for item in items:
                    self.conn.send(P.ITEM, rid, self._encode(ser, item, header.get("shm")))
                value = None
            else:
                value = list(items)
        out = self._encode(ser, value, header.get("shm"))
        self._flush(rid)
        self.conn.send(P.RESULT, rid, out)

    def _target_or_raise(self, name, method):
        try:
            return self._target(name, method)
        except NotFound as e:
            raise _kind(e, "not_found") from None

    def _iterate(self, gen):
        """The items of a generator, each step interruptible by a cancel (sending an item is
        not)."""
        rid = current_rid.get()
        loop = None if inspect.isgenerator(gen) else self._event_loop()
        while True:
            with self.running.region(rid):
                try:
                    if loop is None:
                        item = next(gen)
                    else:
                        import asyncio  # as in _invoke

                        item = self.running.wait(
                            rid, asyncio.run_coroutine_threadsafe(gen.__anext__(), loop))
                except (StopIteration, StopAsyncIteration):
                    return
            yield item

    def _map(self, rid, header, parts, refs) -> None:
        if header.get("ray"):
            # Only maps across nodes need it; every env worker's start stays lean without it.
            from rh_server import ray_map

            spec = self.specs.get(header["name"])
            if spec is None:
                raise _kind(NotFound(f"nothing named {header['name']!r} in this env"), "not_found")
            out = ray_map.run(spec, header, wire.unpack_parts(parts[1]), refs)
            self._flush(rid)
            self.conn.send(P.RESULT, rid, [out])
            return
        target = self._target_or_raise(header["name"], header["method"])
        items = self._args(header, parts[1], refs)
        results = []
        for i, (args, kwargs) in enumerate(items):
            try:
                results.append(self._invoke(target, args, kwargs))
            except BaseException as e:
                e.add_note(f"(in map item {header.get('offset', 0) + i})")
                raise
        out = self._encode("pickle", results, header.get("shm"))
        self._flush(rid)
        self.conn.send(P.RESULT, rid, out)

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        with self._loop_lock:
            if self._loop is None:
                import asyncio  # as in _invoke

                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, daemon=True, name="rh-async").start()
                self._loop = loop
            return self._loop

    def _send_error(self, rid, exc: BaseException, kind: str) -> None:
        tb = exc.__traceback__
        # Drop the worker's own frames so the remote traceback starts in user code.
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        payload = wire.error_payload(exc, kind, text)
        pickled = wire.pickled_exception(exc) if kind == "user" else None
        self.conn.send(P.ERROR, rid, [P.jpart(payload)] + ([pickled] if pickled else []))


def _exit_with_parent(parent: int) -> None:
    """A worker never outlives its server, even when every thread is busy in a call."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


@functools.lru_cache(maxsize=256)
def _call_header(raw: bytes) -> dict:
    """A call's header, parsed once per distinct header (the calls of one function from one
    caller send the same bytes). Headers are only read, never changed."""
    return json.loads(raw)


def _kind(exc: BaseException, kind: str) -> BaseException:
    exc._rh_kind = kind
    return exc


def main() -> None:
    sock_path, threads = sys.argv[1], int(sys.argv[2])
    cwd = os.environ.get("RH_WORKER_CWD")
    if cwd:
        Path(cwd).mkdir(parents=True, exist_ok=True)
        os.chdir(cwd)
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
    Worker(sock_path, threads).serve(threads)
    os._exit(0)


if __name__ == "__main__":
    main()
