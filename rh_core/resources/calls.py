"""What every remote callable offers: call, ``.remote``, ``.enqueue``, ``.map``, ``.starmap``."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import secrets
import time
from typing import Any, Iterable

import attrs

from rh_core.errors import ConfigError
from rh_core.resources.base import Resource
from rh_core.resources.destination import sending_to
from rh_core.transport import wire


@attrs.define(slots=False)
class RunHandle:
    """A result kept on the cluster. ``rh.get(handle)`` fetches it; passing the handle to another
    call on the same cluster hands the result over there, without a trip through the client."""

    run_key: str
    system: dict = attrs.field(repr=False)

    @property
    def __rh_run_ref__(self) -> str:
        return self.run_key

    def _client(self):
        rt = self.__dict__.setdefault("_cluster", None)
        if rt is None:
            rt = self.__dict__["_cluster"] = Resource.from_config(self.system)
        return rt.client()

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the run and return its result (raises its exception). With ``timeout``
        (seconds), a run still going then raises RunTimeoutError and goes on."""
        return self._client().get_run(self.run_key, timeout)

    def cancel(self) -> bool:
        """Stop the run on the cluster; whether it was still running. ``rh.get`` on it then
        raises RunCancelledError."""
        return self._client().cancel_run(self.run_key)["cancelled"]

    def logs(self) -> Iterable[str]:
        """The run's stdout/stderr, streamed while it runs."""
        return self._client().run_logs(self.run_key)

    def delete(self) -> None:
        """Free the result on the cluster."""
        self._client().delete_run(self.run_key)

    def __getstate__(self):
        return {"run_key": self.run_key, "system": self.system}

    def __setstate__(self, state):
        self.__dict__.update(state)


@attrs.define(slots=False)
class ObjectRef:
    """An object kept on a cluster (``cluster.put``). Passed as an argument to a call on that
    cluster, it arrives there as the object itself, without a trip through the client."""

    key: str
    system: dict = attrs.field(repr=False)

    @property
    def __rh_run_ref__(self) -> str:
        return f"obj:{self.key}"

    def get(self) -> Any:
        """The object, fetched from the cluster."""
        return Resource.from_config(self.system).client().get_object(self.key)


def get(handle: RunHandle, timeout: float | None = None) -> Any:
    """The result of a ``.remote()`` or ``.enqueue()`` call (waiting at most ``timeout``
    seconds: then RunTimeoutError, and the run goes on)."""
    if not isinstance(handle, RunHandle):
        raise ConfigError(f"rh.get takes a handle from .remote() or .enqueue(), got {handle!r}")
    return handle.result(timeout)


def map_items(iterables: tuple, kwargs: dict, star: bool) -> list[tuple[tuple, dict]]:
    """Pair inputs as Runhouse does: lists (of equal length) are zipped, scalars broadcast."""
    if not iterables:
        raise ConfigError("map needs at least one iterable of inputs")
    if star:
        if len(iterables) != 1:
            raise ConfigError("starmap takes one list of argument tuples")
        rows = [tuple(a) for a in iterables[0]]
    else:
        cols = [list(it) for it in iterables]
        n = len(cols[0])
        for c in cols[1:]:
            if len(c) != n:
                raise ConfigError(f"map inputs have different lengths: {n} and {len(c)}")
        rows = list(zip(*cols, strict=True))
    n = len(rows)
    for k, v in kwargs.items():
        if isinstance(v, list) and len(v) != n:
            raise ConfigError(
                f"map: keyword {k!r} has {len(v)} items but there are {n} inputs; pass a list of "
                f"{n} to pair them, or a scalar to broadcast it"
            )
    return [
        (row, {k: (v[i] if isinstance(v, list) else v) for k, v in kwargs.items()})
        for i, row in enumerate(rows)
    ]


def _to_its_cluster(method):
    """The call's arguments are pickled for the callable's cluster: folders, blobs and tables
    among them arrive there as a path, bytes or a table (``rh_core.resources.destination``)."""

    @functools.wraps(method)
    def sending(self, *args, **kwargs):
        with sending_to(self._target()[0]):
            return method(self, *args, **kwargs)

    return sending


class RemoteCallable:
    """Mixin: subclasses give ``_target() -> (cluster, server name, method, call kind)``."""

    def _target(self):  # pragma: no cover - abstract
        raise NotImplementedError

    @_to_its_cluster
    def __call__(self, *args, stream_logs: bool | None = None, run_async: bool | None = None,
                 timeout: float | None = None, **kwargs):
        """Call it on the cluster. ``stream_logs`` prints the remote output live;
        ``run_async=True`` returns an awaitable (``False``: the value, for an async function);
        ``timeout`` (seconds) cancels a call that runs longer and raises RunTimeoutError."""
        cluster, name, method, kind = self._target()
        client = cluster.client()
        logs = self._logs(stream_logs)
        # An async function gives an awaitable and a sync one the value, unless run_async says
        # otherwise (Runhouse's flag): the same call either way.
        wait = kind in ("async", "asyncgen") if run_async is None else bool(run_async)
        if kind in ("gen", "asyncgen"):
            items = client.call(name, method, args, kwargs, generator=True, timeout=timeout)
            return _aiter(items) if wait else items
        if wait:
            if not logs and timeout is None:  # the lean path: no thread for a small call
                return client.call_awaitable(name, method, args, kwargs)
            return run_async_call(client.call, name, method, args, kwargs, stream_logs=logs,
                                  timeout=timeout)
        return client.call(name, method, args, kwargs, stream_logs=logs, timeout=timeout)

    @property
    def _stream_logs(self) -> bool:
        return False

    def remote(self, *args, run_key: str | None = None, **kwargs) -> RunHandle:
        """Start the call and return at once with a handle to its result on the cluster."""
        return self._async(args, kwargs, run_key, enqueue=False)

    def enqueue(self, *args, run_key: str | None = None, **kwargs) -> RunHandle:
        """Like ``.remote`` but runs after every earlier enqueued call of this function (FIFO)."""
        return self._async(args, kwargs, run_key, enqueue=True)

    @_to_its_cluster
    def _async(self, args, kwargs, run_key, enqueue) -> RunHandle:
        cluster, name, method, _ = self._target()
        key = run_key
        if key is None:
            key = f"{name}@{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
        cluster.client().call_async(name, method, args, kwargs, run_key=key, enqueue=enqueue)
        return RunHandle(key, cluster.config())

    @_to_its_cluster
    def map(self, *iterables, stream_logs: bool | None = None, **kwargs) -> list:
        """Call once per input, in parallel on the env's workers; results in input order.

        ``f.map(['a', 'b'], num=[1, 2], steps=50)`` calls ``f('a', num=1, steps=50)`` and
        ``f('b', num=2, steps=50)``: lists pair up, scalars are broadcast. ``stream_logs``
        prints the items' output here while they run (also from other nodes).
        """
        cluster, name, method, _ = self._target()
        return cluster.client().map(name, method, map_items(iterables, kwargs, star=False),
                                    self._logs(stream_logs))

    @_to_its_cluster
    def starmap(self, arg_tuples, stream_logs: bool | None = None, **kwargs) -> list:
        """Like :meth:`map`, each input a tuple of positional arguments."""
        cluster, name, method, _ = self._target()
        return cluster.client().map(name, method, map_items((arg_tuples,), kwargs, star=True),
                                    self._logs(stream_logs))

    def _logs(self, stream_logs: bool | None) -> bool:
        """Whether to stream: as asked, else the callable's default, else as the call this code
        runs in streams (calls made from code on a cluster)."""
        if stream_logs is not None:
            return stream_logs
        return self._stream_logs or wire.NESTED_LOGS.get()


def run_async_call(fn, *args, **kwargs):
    """An awaitable of ``fn(*args, **kwargs)`` run in a thread (the client is synchronous), in
    the context of this call (so that it pickles the arguments for the same cluster)."""
    return asyncio.to_thread(contextvars.copy_context().run, fn, *args, **kwargs)


async def _aiter(gen):
    sentinel = object()
    while True:
        item = await asyncio.to_thread(next, gen, sentinel)
        if item is sentinel:
            return
        yield item
