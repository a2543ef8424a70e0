"""A cluster that accepts the store's tokens: the ``rh_server_auth_check`` of a server started
with the setting ``den`` (``{"url", "cluster", "cache_seconds"}``; clusters with
``den_auth=True`` that know a store get it from their provider).

A token of the store (``rhd_...``) is judged by the store: read on the cluster's ``@`` name
allows calls, write allows management, and a share of a resource saved as running on this
cluster allows calls of that resource. Answers are cached per token, resource and level; with
the server's own short cache, a revoke takes effect within ``cache_seconds`` (default 30). A
store that does not answer refuses tokens it has not judged yet (503 naming its URL).
Other tokens are left to the server's other checks.
"""

from __future__ import annotations

import hashlib
import threading
import time

import httpx

from rh_core.errors import AccessRefused
from rh_core.plugin import AccessLevel, ServerContext

DEFAULT_CACHE_SECONDS = 30.0
#: What rh_server's own cache adds on top of this one (rh_server.auth.CACHE_SECONDS).
SERVER_CACHE_SECONDS = 10.0


class StoreJudge:
    """Asks one store about one cluster's callers, and remembers the answers for a while."""

    def __init__(self, url: str, cluster: str, cache_seconds: float):
        self.url, self.cluster = url.rstrip("/"), cluster.removeprefix("@/")
        self.keep = max(0.0, float(cache_seconds) - SERVER_CACHE_SECONDS)
        self._cache: dict[tuple[str, str, str], tuple[bool, float]] = {}
        self._lock = threading.Lock()
        # Asked from inside the server's request handling: short timeouts, one pool.
        self._http = httpx.Client(base_url=self.url, timeout=httpx.Timeout(3.0, connect=2.0))

    def allowed(self, token: str, resource: str, access: AccessLevel) -> bool:
        key = (hashlib.sha256(token.encode()).hexdigest(), resource, access.value)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        verdict = self._ask(token, resource, access)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (verdict, now + self.keep)
        return verdict

    def _ask(self, token: str, resource: str, access: AccessLevel) -> bool:
        try:
            r = self._http.get("/v1/authorize", headers={"Authorization": f"Bearer {token}"},
                               params={"cluster": self.cluster, "resource": resource,
                                       "level": access.value})
        except httpx.TransportError as e:
            raise AccessRefused(f"the shared store at {self.url}, which decides this cluster's "
                                f"tokens, does not answer ({type(e).__name__}); try again when it "
                                f"is up", 503) from None
        if r.status_code == 200:
            return bool(r.json().get("allowed"))
        try:
            message = r.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {r.status_code}"
        if r.status_code == 401:
            raise AccessRefused(f"the shared store at {self.url} refused the token: {message}", 401)
        raise AccessRefused(f"the shared store at {self.url} could not decide: {message}", 503)


_judges: dict[tuple, StoreJudge] = {}


def judge_for(server: ServerContext) -> StoreJudge | None:
    setting = server.settings.get("den")
    if not server.den_auth or not isinstance(setting, dict) or not setting.get("url") \
            or not setting.get("cluster"):
        return None
    key = (setting["url"], setting["cluster"], setting.get("cache_seconds"))
    judge = _judges.get(key)
    if judge is None:
        judge = _judges[key] = StoreJudge(setting["url"], setting["cluster"],
                                          setting.get("cache_seconds") or DEFAULT_CACHE_SECONDS)
    return judge


def check(token: str | None, resource: str, access: AccessLevel,
          server: ServerContext) -> bool | None:
    if token is None or not token.startswith("rhd_"):
        return None
    judge = judge_for(server)
    return None if judge is None else judge.allowed(token, resource, access)
