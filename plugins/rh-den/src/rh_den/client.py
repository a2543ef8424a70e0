"""Talking to a store over HTTP: keep-alive connections per store and token (the core's lean
``http.client`` pool, a fraction of httpx's cost per request), and the store's error answers
turned into rh's errors (each names the store's URL where it helps)."""

from __future__ import annotations

import json
import threading
from urllib.parse import quote, urlencode

from rh_core.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    ResourceNotFoundError,
    ServerError,
    StoreUnavailableError,
)
from rh_core.transport.lean import Dropped, LeanPool, Refused

TIMEOUT = 30.0
_pools: dict[tuple[str, str | None], LeanPool] = {}
_lock = threading.Lock()


def path_url(path: str) -> str:
    return quote(path, safe="/")


class DenClient:
    """Requests to the store at ``url``, with ``token`` (None: as an anonymous caller)."""

    def __init__(self, url: str, token: str | None):
        self.url, self.token = url.rstrip("/"), token

    def _pool(self) -> LeanPool:
        key = (self.url, self.token)
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                headers = {"Accept": "application/json"}
                if self.token:
                    headers["Authorization"] = f"Bearer {self.token}"
                pool = _pools[key] = LeanPool(self.url, True, headers)
        return pool

    def _unavailable(self, e: Exception) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"the shared store at {self.url} does not answer ({e}); check that it runs and the "
            f"URL is right (rh login URL --token TOKEN)")

    def request(self, method: str, path: str, *, json=None, params=None,
                missing_ok: bool = False):
        """The answer's JSON; None for a 404 of a missing resource when ``missing_ok``."""
        body = b"" if json is None else _dumps(json)
        url = path + (f"?{urlencode(params)}" if params else "")
        headers = {"Content-Type": "application/json"} if json is not None else None
        for attempt in (1, 2):
            try:
                answer = self._pool().request(method, url, body, timeout=TIMEOUT,
                                              headers=headers)
                break
            except Refused as e:
                raise self._unavailable(e) from None
            except Dropped as e:
                # A kept connection the store closed: a read is asked again; a change is not,
                # since it may have been made.
                if method != "GET" or attempt == 2:
                    raise StoreUnavailableError(
                        f"the connection to the shared store at {self.url} broke during {method} "
                        f"{path} ({e}); whether it was done is unknown: look before retrying"
                    ) from None
            except TimeoutError:
                raise self._unavailable(f"no answer in {TIMEOUT:.0f} s") from None
        return self._answer(answer.status, answer.body, missing_ok)

    def _answer(self, status: int, body: bytes, missing_ok: bool):
        if status < 400:
            return _loads(body)
        try:
            error = _loads(body)["error"]
            kind, message = error["kind"], error["message"]
        except (ValueError, KeyError, TypeError):
            error, kind = {}, "unknown"
            message = f"HTTP {status}: {bytes(body[:200]).decode(errors='replace')}"
        if status == 404 and missing_ok and kind == "not_found":
            return None
        if status == 401:
            raise AuthError(f"the shared store at {self.url} refused the token: {message}"
                            + ("" if self.token else "; log in: rh login URL --token TOKEN"), 401)
        if status == 403:
            raise AuthError(message, 403)
        if status == 404:
            raise ResourceNotFoundError(message)
        if status == 409 and kind == "conflict":
            raise ConflictError(message, error.get("base_version"), error.get("latest"))
        if status in (400, 409, 413):
            raise ConfigError(message)
        raise ServerError(f"the shared store at {self.url} failed: {message}", status)


def _dumps(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _loads(body: bytes):
    return json.loads(body)


def forget(url: str, token: str | None) -> None:
    """Close the connections kept for this store and token (after logging out)."""
    with _lock:
        pool = _pools.pop((url.rstrip("/"), token), None)
    if pool is not None:
        pool.close()
