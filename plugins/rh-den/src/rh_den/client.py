"""Talking to a store over HTTP: one keep-alive ``httpx`` client per store and token, and the
store's error answers turned into rh's errors (each names the store's URL where it helps)."""

from __future__ import annotations

import threading
from urllib.parse import quote

import httpx

from rh_core.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    ResourceNotFoundError,
    ServerError,
    StoreUnavailableError,
)

TIMEOUT = httpx.Timeout(30.0, connect=5.0)
_clients: dict[tuple[str, str | None], httpx.Client] = {}
_lock = threading.Lock()


def path_url(path: str) -> str:
    return quote(path, safe="/")


class DenClient:
    """Requests to the store at ``url``, with ``token`` (None: as an anonymous caller)."""

    def __init__(self, url: str, token: str | None):
        self.url, self.token = url.rstrip("/"), token

    def _http(self) -> httpx.Client:
        key = (self.url, self.token)
        with _lock:
            client = _clients.get(key)
            if client is None:
                headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
                client = _clients[key] = httpx.Client(base_url=self.url, headers=headers,
                                                      timeout=TIMEOUT)
        return client

    def request(self, method: str, path: str, *, json=None, params=None,
                missing_ok: bool = False):
        """The answer's JSON; None for a 404 of a missing resource when ``missing_ok``."""
        try:
            response = self._http().request(method, path, json=json, params=params)
        except httpx.TransportError as e:
            raise StoreUnavailableError(
                f"the shared store at {self.url} does not answer ({type(e).__name__}: {e}); "
                f"check that it runs and the URL is right (rh login URL --token TOKEN)") from None
        if response.status_code < 400:
            return response.json()
        try:
            error = response.json()["error"]
            kind, message = error["kind"], error["message"]
        except (ValueError, KeyError, TypeError):
            error, kind = {}, "unknown"
            message = f"HTTP {response.status_code}: {response.text[:200]}"
        status = response.status_code
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


def forget(url: str, token: str | None) -> None:
    """Close the client kept for this store and token (after logging out)."""
    with _lock:
        client = _clients.pop((url.rstrip("/"), token), None)
    if client is not None:
        client.close()
