"""The HTTP client of one cluster's server: calls, puts, runs, and rebuilding remote errors."""

from __future__ import annotations

import base64
import builtins
import importlib
import json
import pickle
import sys
from typing import Any, Callable, Iterator

import httpx

from rh_core import errors, wire
from rh_core.interfaces import ConnectionInfo

_KINDS = {
    "not_found": errors.RemoteFunctionNotFound,
    "clash": errors.NameClashError,
    "worker_crashed": errors.WorkerCrashedError,
    "run_not_found": errors.RunNotFoundError,
    "auth": errors.AuthError,
    "bad_request": errors.ServerError,
    "define": errors.ServerError,
    "run_failed": errors.ServerError,
}


def rebuild_error(payload: dict, status: int, cluster: str) -> BaseException:
    """The exception a failed request stands for, with the remote traceback attached."""
    err = payload.get("error", payload) if isinstance(payload, dict) else {}
    kind = err.get("kind", "user")
    message = err.get("message", "unknown error")
    tb = err.get("traceback") or ""
    if kind == "serialization":
        exc: BaseException = errors.SerializationError(message)
    elif kind == "install":
        exc = errors.PackageInstallError(message)
    elif kind in _KINDS:
        exc = _KINDS[kind](message, status)
    elif kind == "user":
        exc = _user_exception(err)
    else:
        exc = errors.ServerError(f"{message} (HTTP {status})", status)
    if tb:
        exc.add_note(f"\n--- remote traceback (cluster {cluster!r}) ---\n{tb.rstrip()}")
    return exc


def _user_exception(err: dict) -> BaseException:
    if err.get("exc_pickle"):
        try:
            exc = pickle.loads(base64.b64decode(err["exc_pickle"]))
            if isinstance(exc, BaseException):
                return exc
        except Exception:
            pass
    type_name, message = err.get("type", "Exception"), err.get("message", "")
    cls = _import_type(type_name)
    if cls is not None:
        try:
            return cls(message)
        except Exception:
            pass
    return errors.RemoteException(type_name, message, err.get("traceback", ""))


def _import_type(path: str) -> type | None:
    if "." not in path:
        t = getattr(builtins, path, None)
        return t if isinstance(t, type) and issubclass(t, BaseException) else None
    module, _, qual = path.rpartition(".")
    try:
        obj: Any = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except Exception:
        return None
    return obj if isinstance(obj, type) and issubclass(obj, BaseException) else None


class Client:
    """Keep-alive HTTP client to one server. Thread-safe (httpx.Client is)."""

    def __init__(self, info: ConnectionInfo, token: str | None, cluster_name: str,
                 reconnect: Callable[[], tuple[ConnectionInfo, str | None]] | None = None):
        self.cluster_name = cluster_name
        self._reconnect = reconnect
        self._open(info, token)

    def _open(self, info: ConnectionInfo, token: str | None) -> None:
        self.info = info
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(
            base_url=info.base_url, headers=headers, verify=info.verify,
            timeout=httpx.Timeout(None, connect=15.0),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ plumbing

    def request(self, method: str, url: str, **kw) -> httpx.Response:
        try:
            return self.http.request(method, url, **kw)
        except httpx.ConnectError as e:
            if self._reconnect is None:
                raise self._unreachable(e) from None
        except (httpx.RemoteProtocolError, httpx.ReadError) as e:
            raise self._dropped(e) from None
        # Nothing was sent: the server may have gone; bring it back once and retry.
        info, token = self._reconnect()
        self.http.close()
        self._open(info, token)
        try:
            return self.http.request(method, url, **kw)
        except httpx.ConnectError as e:
            raise self._unreachable(e) from None

    def _dropped(self, e: Exception) -> errors.ConnectionFailedError:
        return errors.ConnectionFailedError(
            f"the server of cluster {self.cluster_name!r} closed the connection during the request "
            f"({type(e).__name__}: {e}); it may have restarted. The call's outcome is unknown; "
            f"check `rh status {self.cluster_name}` and retry."
        )

    def _unreachable(self, e: Exception) -> errors.ConnectionFailedError:
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

    # ------------------------------------------------------------------ API

    def health(self) -> dict:
        return self.get_json("/health")

    def status(self) -> dict:
        return self.get_json("/status")

    def keys(self) -> list[str]:
        return self.get_json("/keys")["keys"]

    def put(self, name: str, spec: dict) -> dict:
        return self.check(self.request("PUT", f"/{name}", content=json.dumps(spec))).json()

    def delete(self, name: str) -> None:
        self.check(self.request("DELETE", f"/{name}"))

    def server_log(self) -> str:
        return self.check(self.request("GET", "/logs")).text

    def _body(self, args, kwargs) -> tuple[list, list[str]]:
        refs: list[str] = []
        try:
            return wire.dumps_pickle((args, kwargs), refs), refs
        except Exception as e:
            raise errors.SerializationError(f"the arguments could not be pickled: {e}") from None

    def call(self, name: str, method: str, args=(), kwargs=None, *, stream_logs: bool = False,
             generator: bool = False, enqueue: bool = False) -> Any:
        """Run ``name.method(*args, **kwargs)`` on the cluster and return its result."""
        parts, refs = self._body(args, kwargs or {})
        params = {}
        if refs:
            params["rh_refs"] = ",".join(refs)
        if enqueue:
            params["rh_enqueue"] = "1"
        if generator:
            params["rh_stream"] = "1"
            return self._stream(name, method, parts, params, {})
        if stream_logs:
            params["rh_stream"] = "1"
            holder: dict = {}
            for _ in self._stream(name, method, parts, params, holder):
                pass
            return holder.get("result")
        resp = self.request("POST", f"/{name}/{method}", content=_content(parts), params=params,
                            headers={"Content-Type": wire.PICKLE_CT})
        return wire.loads_pickle(self.check(resp).content)

    def _stream(self, name, method, parts, params, holder: dict) -> Iterator[Any]:
        with self.http.stream("POST", f"/{name}/{method}", content=_content(parts), params=params,
                              headers={"Content-Type": wire.PICKLE_CT}) as resp:
            if resp.status_code >= 400:
                resp.read()
                self.check(resp)
            for kind, payload in wire.iter_frames(resp.iter_bytes()):
                if kind == wire.LOG:
                    entry = json.loads(payload)
                    out = sys.stderr if entry.get("stream") == "stderr" else sys.stdout
                    out.write(entry["text"])
                    out.flush()
                elif kind == wire.ITEM:
                    yield wire.loads_pickle(payload)
                elif kind == wire.RESULT:
                    holder["result"] = wire.loads_pickle(payload) if payload else None
                elif kind == wire.ERROR:
                    raise rebuild_error(json.loads(payload), 500, self.cluster_name)

    def call_async(self, name: str, method: str, args=(), kwargs=None, *, run_key: str,
                   enqueue: bool = False) -> str:
        parts, refs = self._body(args, kwargs or {})
        params = {"rh_async": "1", "rh_run_key": run_key}
        if refs:
            params["rh_refs"] = ",".join(refs)
        if enqueue:
            params["rh_enqueue"] = "1"
        resp = self.request("POST", f"/{name}/{method}", content=_content(parts), params=params,
                            headers={"Content-Type": wire.PICKLE_CT})
        return self.check(resp).json()["run_key"]

    def get_run(self, run_key: str) -> Any:
        resp = self.check(self.request("GET", f"/runs/{run_key}"))
        return wire.loads_pickle(resp.content)

    def run_logs(self, run_key: str) -> Iterator[str]:
        with self.http.stream("GET", f"/runs/{run_key}/logs") as resp:
            if resp.status_code >= 400:
                resp.read()
                self.check(resp)
            yield from resp.iter_text()

    def delete_run(self, run_key: str) -> None:
        self.check(self.request("DELETE", f"/runs/{run_key}"))

    def map(self, name: str, method: str, items: list[tuple[tuple, dict]]) -> list:
        """Run every ``(args, kwargs)`` item; results in input order."""
        if not items:
            return []
        n_chunks = min(len(items), 64)
        size = -(-len(items) // n_chunks)
        chunks, offsets, refs = [], [], []
        for start in range(0, len(items), size):
            try:
                chunks.append(wire.joined(wire.dumps_pickle(items[start:start + size], refs)))
            except Exception as e:
                raise errors.SerializationError(f"map items could not be pickled: {e}") from None
            offsets.append(start)
        params = {"rh_map": "1", "rh_offsets": json.dumps(offsets)}
        if refs:
            params["rh_refs"] = ",".join(refs)
        resp = self.request("POST", f"/{name}/{method}", content=_content(wire.pack_parts(chunks)),
                            params=params, headers={"Content-Type": wire.PICKLE_CT})
        out: list = []
        for part in wire.unpack_parts(self.check(resp).content):
            out.extend(wire.loads_pickle(part))
        return out


def _content(parts: list) -> Any:
    total = sum(p.nbytes if isinstance(p, memoryview) else len(p) for p in parts)
    if total < (1 << 20):
        return b"".join(parts)
    return iter([bytes(p) if not isinstance(p, bytes) else p for p in parts])
