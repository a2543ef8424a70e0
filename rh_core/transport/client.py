"""The HTTP client of one cluster's server: calls, puts, runs, tokens (remote errors are
rebuilt by :mod:`rh_core.transport.remote_errors`)."""

from __future__ import annotations

import asyncio
import functools
import json
import secrets
import ssl
import sys
import time
from typing import Any, Awaitable, Callable, Iterator
from urllib.parse import urlencode

import httpx

from rh_core import errors
from rh_core.plugin.interfaces import ConnectionInfo
from rh_core.transport import lean, wire
from rh_core.transport import shm as shared
from rh_core.transport.management import Management
from rh_core.transport.remote_errors import rebuild_error


class Client(Management):
    """Keep-alive HTTP client to one server. Thread-safe (httpx.Client is)."""

    def __init__(self, info: ConnectionInfo, token: str | None, cluster_name: str,
                 reconnect: Callable[[], tuple[ConnectionInfo, str | None]] | None = None,
                 explain: Callable[[], str | None] | None = None):
        self.cluster_name = cluster_name
        self._reconnect = reconnect
        #: Asked why, when the connection breaks during a request (the connection type knows).
        self._explain = explain
        self._open(info, token)

    def _open(self, info: ConnectionInfo, token: str | None) -> None:
        self.info = info
        self._urls: dict[tuple[str, str], httpx.URL] = {}
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers["Content-Type"] = wire.PICKLE_CT
        verify = info.verify
        if isinstance(verify, str):  # trust exactly this certificate (file)
            verify = ssl.create_default_context(cafile=verify)
        self.http = httpx.Client(
            base_url=info.base_url, headers=headers, verify=verify,
            timeout=httpx.Timeout(None, connect=15.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )
        self.lean = lean.LeanPool(info.base_url, verify, headers, info.open_socket)
        self._paths: dict[tuple[str, str], str] = {}

    def close(self) -> None:
        self.http.close()
        self.lean.close()

    # ------------------------------------------------------------------ plumbing

    def _reopen(self) -> None:
        """Nothing was sent and the server is unreachable: bring it back and reconnect."""
        info, token = self._reconnect()
        self.close()
        self._open(info, token)

    def _send(self, build: Callable[[], httpx.Request]) -> httpx.Response:
        """Send (streaming the response); a refused connection brings the server back once."""
        for attempt in (0, 1):
            try:
                return self.http.send(build(), stream=True)
            except httpx.ConnectError as e:
                if attempt or self._reconnect is None:
                    raise self._unreachable(e) from None
                self._reopen()
            except (httpx.RemoteProtocolError, httpx.ReadError) as e:
                raise self._dropped(e) from None
        raise AssertionError("not reached")

    def request(self, method: str, url: str, **kw) -> httpx.Response:
        resp = self._send(lambda: self.http.build_request(method, url, **kw))
        try:
            resp.read()
        except (httpx.RemoteProtocolError, httpx.ReadError) as e:
            raise self._dropped(e) from None
        finally:
            resp.close()
        return resp

    def _dropped(self, e: Exception) -> errors.ConnectionFailedError:
        why = None
        if self._explain is not None:
            try:
                why = self._explain()
            except Exception:  # noqa: BLE001 - the error below is worth raising without it
                why = None
        return errors.ConnectionFailedError(
            f"the server of cluster {self.cluster_name!r} closed the connection during the request "
            f"({type(e).__name__}: {e}); "
            + (f"{why}. " if why else "it may have restarted. ")
            + f"The call's outcome is unknown; check `rh status {self.cluster_name}` and retry."
        )

    def _url(self, name: str, method: str) -> httpx.URL:
        """Absolute call URLs, parsed once (httpx parses and merges every string URL and
        every params dict, which costs more than the rest of a trivial call's client side)."""
        url = self._urls.get((name, method))
        if url is None:
            query = "?rh_shm=1" if self.info.shm_dir else ""
            url = httpx.URL(f"{self.info.base_url}/{name}/{method}{query}")
            self._urls[(name, method)] = url
        return url

    def _path(self, name: str, method: str) -> str:
        """The call's path and query, built once per (name, method)."""
        path = self._paths.get((name, method))
        if path is None:
            path = self._paths[(name, method)] = \
                f"/{name}/{method}{'?rh_shm=1' if self.info.shm_dir else ''}"
        return path

    def post(self, name: str, method: str, parts: list, params: dict | None = None,
             timeout: float | None = None):
        """POST a pickle body given as parts (through the lean transport); returns the response
        body, as a writable bytearray when it is large (so arrays unpickled from it are
        writable)."""
        total = sum(p.nbytes if isinstance(p, memoryview) else len(p) for p in parts)
        body = b"".join(parts) if total < BIG else _slices(parts)  # large: as they are
        path = self._path(name, method)
        if params:
            path += ("&" if "?" in path else "?") + urlencode(params)
        for attempt in (0, 1):
            try:
                answer = self.lean.post(path, body, total, BIG, timeout)
                break
            except lean.Refused as e:
                if attempt or self._reconnect is None:
                    raise self._unreachable(e) from None
                self._reopen()
            except lean.Dropped as e:
                raise self._dropped(e) from None
        if answer.status >= 400:
            raise rebuild_error(_payload(answer.body), answer.status, self.cluster_name)
        return answer.body

    def _unreachable(self, e: Exception) -> errors.ConnectionFailedError:
        if "CERTIFICATE_VERIFY_FAILED" in str(e):
            return errors.ConnectionFailedError(
                f"the server of cluster {self.cluster_name!r} at {self.info.base_url} presented a "
                f"certificate this client does not trust ({e}). For a certificate from a private "
                f"CA, give the CA's certificate as the cluster's ssl_ca_bundle; for a self-signed "
                f"one, its file as ssl_certfile.")
        return errors.ConnectionFailedError(
            f"cannot reach the server of cluster {self.cluster_name!r} at {self.info.base_url}: "
            f"{e}. Check that the cluster is up (`rh status {self.cluster_name}`) and reachable."
        )

    def check(self, resp: httpx.Response) -> httpx.Response:
        if resp.status_code < 400:
            return resp
        try:
            payload = resp.json()
        except ValueError:
            payload = {"error": {"kind": "http", "message": resp.text[:2000]}}
        raise rebuild_error(payload, resp.status_code, self.cluster_name)

    def get_json(self, path: str) -> Any:
        return self.check(self.request("GET", path)).json()

    def _body(self, args, kwargs, shm_names: list[str] | None = None) -> tuple[list, list[str]]:
        refs: list[str] = []
        shm = self.info.shm_dir if shm_names is not None else None
        try:
            return wire.dumps_pickle((args, kwargs), refs, shm, shm_names), refs
        except Exception as e:
            if shm_names:
                shared.discard(shm, shm_names)
            if isinstance(e, errors.RhError):  # rh's own, e.g. an argument's data not found
                raise
            raise errors.SerializationError(f"the arguments could not be pickled: {e}") from None

    def _done(self, shm_names: list[str]) -> None:
        """Remove shared buffers the server never took (the call failed before reading them)."""
        if shm_names:
            shared.discard(self.info.shm_dir, shm_names)

    def call(self, name: str, method: str, args=(), kwargs=None, *, stream_logs: bool = False,
             generator: bool = False, enqueue: bool = False, timeout: float | None = None) -> Any:
        """Run ``name.method(*args, **kwargs)`` on the cluster and return its result. With
        ``timeout`` (seconds), a call still running then is cancelled and RunTimeoutError names
        its run. Ctrl-C (or this process ending) cancels the call on the cluster too."""
        if timeout is not None:
            key = f"{name}@{secrets.token_hex(6)}"
            try:
                return self._call(name, method, args, kwargs, stream_logs, generator, enqueue,
                                  {"rh_run_key": key}, timeout)
            except (httpx.TimeoutException, TimeoutError):
                raise self._timed_out(f"{name}.{method}", key, timeout) from None
        return self._call(name, method, args, kwargs, stream_logs, generator, enqueue, {}, None)

    def _timed_out(self, what: str, key: str, timeout: float) -> errors.RunTimeoutError:
        """Cancel the run ``key`` that took too long; the error to raise."""
        try:
            self.cancel_run(key)
        except errors.RhError:
            pass  # it ended meanwhile
        return errors.RunTimeoutError(
            f"{what} on cluster {self.cluster_name!r} took more than {timeout} s; its run "
            f"{key!r} was cancelled", key)

    def _call(self, name, method, args, kwargs, stream_logs, generator, enqueue, params,
              timeout) -> Any:
        shm = self.info.shm_dir
        names: list[str] = []
        parts, refs = self._body(args, kwargs or {}, names if shm else None)
        if refs:
            params["rh_refs"] = ",".join(refs)
        if enqueue:
            params["rh_enqueue"] = "1"
        if generator:
            params["rh_stream"] = "1"
            return self._stream(name, method, parts, params, {}, names, timeout)
        if stream_logs:
            params["rh_stream"] = "1"
            holder: dict = {}
            for _ in self._stream(name, method, parts, params, holder, names, timeout):
                pass
            return holder.get("result")
        return self._plain(name, method, parts, params, names, timeout)

    def _plain(self, name, method, parts, params, names, timeout) -> Any:
        try:
            return wire.loads_pickle(self.post(name, method, parts, params, timeout),
                                     shm=self.info.shm_dir)
        finally:
            self._done(names)

    def call_awaitable(self, name: str, method: str, args=(), kwargs=None) -> Awaitable:
        """What ``f(..., run_async=True)`` returns for a plain call: the arguments pickled now
        (in the caller's context), and an awaitable of the result. A small body goes out on the
        running event loop's own connection, with no thread between; a large one (or one with
        references to results or shared buffers) from a worker thread, as do calls made where
        no loop runs yet or whose server must first be brought back."""
        shm = self.info.shm_dir
        names: list[str] = []
        parts, refs = self._body(args, kwargs or {}, names if shm else None)
        params = {"rh_refs": ",".join(refs)} if refs else {}
        total = sum(p.nbytes if isinstance(p, memoryview) else len(p) for p in parts)
        threaded = functools.partial(self._plain, name, method, parts, params, names, None)
        if refs or names or total >= BIG:
            return asyncio.to_thread(threaded)
        return self._on_loop(name, method, b"".join(parts), threaded)

    async def _on_loop(self, name: str, method: str, body: bytes, threaded) -> Any:
        try:
            answer = await self.lean.apost(self._path(name, method), body)
        except lean.Refused:  # nothing was sent: the threaded path brings the server back
            return await asyncio.to_thread(threaded)
        except lean.Dropped as e:
            raise self._dropped(e) from None
        if answer.status >= 400:
            raise rebuild_error(_payload(answer.body), answer.status, self.cluster_name)
        return wire.loads_pickle(answer.body, shm=self.info.shm_dir)

    def _stream(self, name, method, parts, params, holder: dict, names: list[str],
                timeout: float | None = None, raw_result: bool = False) -> Iterator[Any]:
        shm = self.info.shm_dir
        extra = {"timeout": _timeout(timeout)} if timeout is not None else {}
        deadline = time.monotonic() + timeout if timeout is not None else None
        try:
            with self.http.stream("POST", self._url(name, method), content=b"".join(parts),
                                  params=params, **extra) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self.check(resp)
                for kind, payload in wire.iter_frames(resp.iter_bytes()):
                    if deadline is not None and time.monotonic() > deadline:
                        raise self._timed_out(f"{name}.{method}", params["rh_run_key"], timeout)
                    if kind == wire.LOG:
                        entry = json.loads(payload)
                        out = sys.stderr if entry.get("stream") == "stderr" else sys.stdout
                        out.write(entry["text"])
                        out.flush()
                    elif kind == wire.ITEM:
                        yield wire.loads_pickle(payload, shm=shm)
                    elif kind == wire.RESULT and raw_result:
                        holder["result"] = payload
                    elif kind == wire.RESULT:
                        holder["result"] = wire.loads_pickle(payload, shm=shm) if payload else None
                    elif kind == wire.ERROR:
                        raise rebuild_error(json.loads(payload), 500, self.cluster_name)
        except httpx.TimeoutException:
            if deadline is None:
                raise
            raise self._timed_out(f"{name}.{method}", params["rh_run_key"], timeout) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as e:  # the server went mid-stream
            raise self._dropped(e) from None
        except httpx.ConnectError as e:
            raise self._unreachable(e) from None
        finally:
            self._done(names)

    def call_async(self, name: str, method: str, args=(), kwargs=None, *, run_key: str,
                   enqueue: bool = False) -> str:
        parts, refs = self._body(args, kwargs or {})
        params = {"rh_async": "1", "rh_run_key": run_key}
        if refs:
            params["rh_refs"] = ",".join(refs)
        if enqueue:
            params["rh_enqueue"] = "1"
        return json.loads(self.post(name, method, parts, params))["run_key"]

    def map(self, name: str, method: str, items: list[tuple[tuple, dict]],
            stream_logs: bool = False) -> list:
        """Run every ``(args, kwargs)`` item; results in input order. With ``stream_logs``,
        the items' output is printed here while they run."""
        if not items:
            return []
        n_chunks = min(len(items), 64)
        size = -(-len(items) // n_chunks)
        shm = self.info.shm_dir
        chunks, offsets, refs, names = [], [], [], []
        try:
            for start in range(0, len(items), size):
                try:
                    chunk = wire.dumps_pickle(items[start:start + size], refs, shm, names)
                except errors.RhError:  # rh's own, e.g. an argument's data not found
                    raise
                except Exception as e:
                    raise errors.SerializationError(f"map items could not be pickled: {e}") from None
                chunks.append(wire.joined(chunk))
                offsets.append(start)
            params = {"rh_map": "1", "rh_offsets": json.dumps(offsets)}
            if refs:
                params["rh_refs"] = ",".join(refs)
            out: list = []
            if stream_logs:
                params["rh_stream"] = "1"
                holder: dict = {}
                for _ in self._stream(name, method, wire.pack_parts(chunks), params, holder, [],
                                      raw_result=True):
                    pass
                body = holder["result"]
            else:
                body = self.post(name, method, wire.pack_parts(chunks), params)
            for part in wire.unpack_parts(body):
                out.extend(wire.loads_pickle(part, shm=shm))
            return out
        finally:
            self._done(names)


BIG = 1 << 20


def _payload(body: bytes | bytearray) -> dict:
    try:
        return json.loads(body)
    except ValueError:
        return {"error": {"kind": "http", "message": bytes(body[:2000]).decode(errors="replace")}}


def _timeout(seconds: float) -> httpx.Timeout:
    """Wait at most ``seconds`` for each read of the answer (connecting keeps its own limit)."""
    return httpx.Timeout(seconds, connect=15.0)


def _slices(parts: list) -> Iterator:
    for p in parts:
        view = memoryview(p).cast("B")
        for i in range(0, view.nbytes, 4 * BIG):
            yield view[i:i + 4 * BIG]

