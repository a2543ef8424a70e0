"""Who is calling and what they may do.

The owner token (compared in constant time) may do everything. Any other token is judged by
the ``rh_server_auth_check`` hook: plugins first, the built-in check of granted tokens
(:mod:`rh_server.grants`) last, each answer cached for a few seconds. Without ``den_auth`` a
caller with no token may read. An address that keeps presenting tokens that are not valid here
is refused (429) for the rest of a minute. See docs/security.md for every rule.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import time

import attrs
from starlette.requests import Request

from rh_core.errors import AccessRefused
from rh_core.plugin import AccessLevel, ServerContext
from rh_server.grants import TokenStore
from rh_server.web import HTTPProblem, bearer, client_address

CACHE_SECONDS = 10.0
WINDOW_SECONDS = 60.0


@attrs.frozen
class Caller:
    """Who made a request, as the access log records it (never the token itself)."""

    #: ``owner``, ``token`` (a granted token or one a plugin accepted) or ``anonymous``.
    kind: str
    #: The user a granted token was made for.
    user: str | None = None
    #: The grant's id, or for a token a plugin accepted the first 12 hex digits of its SHA-256.
    token_id: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.kind != "anonymous"


OWNER = Caller("owner")
ANONYMOUS = Caller("anonymous")
#: Code running in this server's own env workers (``rh.here``): write access everywhere but
#: the owner's routes.
WORKER = Caller("worker")


class Auth:
    """Decides every request's access; owns the grants and the record of failed attempts."""

    def __init__(self, ctx: ServerContext, owner_token: str | None, pm, grants: TokenStore,
                 failures_per_minute: int, worker_token: str | None = None):
        self.ctx, self.pm, self.grants = ctx, pm, grants
        self._owner = owner_token
        self._worker = worker_token
        self._cache: dict[tuple, tuple[bool | None, float]] = {}
        self._failures: dict[str, collections.deque] = {}
        self._limit = failures_per_minute
        self.fronted = "caddy" in ctx.settings

    def is_owner(self, token: str | None) -> bool:
        return bool(token and self._owner and hmac.compare_digest(token, self._owner))

    def check(self, request: Request, resource: str, needed: AccessLevel) -> Caller:
        """The caller, if it may use ``resource`` at ``needed`` level; else 401, 403 or 429.
        The caller is also kept in the request's scope for the access log."""
        token, address = self._screen(request)
        if address is None:
            return OWNER
        if token and self._worker and hmac.compare_digest(token, self._worker):
            request.scope["rh.caller"] = WORKER
            return WORKER
        verdict = self._judged(token, resource, needed, address)
        if verdict is True:
            caller = self._identify(token)
        elif not self.ctx.den_auth and needed == AccessLevel.READ and (
                token is None or verdict is False):
            caller = ANONYMOUS  # public reads: a valid token never gets less than no token
        else:
            raise self._refusal(token, verdict, resource, needed, address)
        request.scope["rh.caller"] = caller
        return caller

    def may(self, request: Request, resource: str, needed: AccessLevel) -> bool:
        """Whether the request's token has ``needed`` access on ``resource`` (raises nothing
        but a malformed header's 401)."""
        token = bearer(request)
        if self.is_owner(token) or (token and self._worker and hmac.compare_digest(token, self._worker)):
            return True
        try:
            return token is not None and self._verdict(token, resource, needed) is True
        except AccessRefused:
            return False

    def owner_only(self, request: Request, what: str) -> Caller:
        """The owner, or 401/403: for routes only the cluster's owner may use."""
        token, address = self._screen(request)
        if address is None:
            return OWNER
        if token is None:
            raise HTTPProblem(401, "auth", f"only the cluster's owner may {what}")
        if self._judged(token, "*", AccessLevel.READ, address) is None:
            raise self._refusal(token, None, "*", AccessLevel.READ, address)
        raise HTTPProblem(403, "auth", f"only the cluster's owner may {what}")

    def forget(self) -> None:
        """Drop cached answers (after a grant is revoked)."""
        self._cache.clear()

    # ------------------------------------------------------------------ internals

    def _screen(self, request: Request) -> tuple[str | None, str | None]:
        """The request's token and its caller's address once past the brake on invalid tokens;
        for the owner (recorded in the scope at once) the address is None."""
        token = bearer(request)
        if self.is_owner(token):
            request.scope["rh.caller"] = OWNER
            return token, None
        address = client_address(request.scope, self.fronted)
        self._check_not_blocked(address)
        return token, address

    def _judged(self, token: str | None, resource: str, needed: AccessLevel,
                address: str) -> bool | None:
        """:meth:`_verdict`, with a plugin's own refusal (:class:`AccessRefused`) answered with
        its status and message; a refused credential (401) counts against the address."""
        try:
            return self._verdict(token, resource, needed)
        except AccessRefused as e:
            if e.status == 401:
                self._failed(address)
            raise HTTPProblem(e.status, "auth", str(e)) from None

    def _verdict(self, token: str | None, resource: str, needed: AccessLevel) -> bool | None:
        """The auth hook's answer, cached for a short time (a plugin may ask a remote service),
        and never past a granted token's expiry."""
        key = (token, resource, needed)
        now = time.time()
        hit = self._cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        verdict = self.pm.hook.rh_server_auth_check(
            token=token, resource=resource, access=needed, server=self.ctx)
        until = now + CACHE_SECONDS
        entry = self.grants.lookup(token) if token else None
        if entry is not None and entry.get("expires"):
            until = min(until, entry["expires"])
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (verdict, until)
        return verdict

    def _identify(self, token: str | None) -> Caller:
        if token is None:
            return ANONYMOUS  # a plugin let an anonymous caller in
        entry = self.grants.lookup(token)
        if entry is not None:
            return Caller("token", entry["user"], entry["id"])
        return Caller("token", None, hashlib.sha256(token.encode()).hexdigest()[:12])

    def _refusal(self, token, verdict, resource, needed, address) -> HTTPProblem:
        if token is None:
            return HTTPProblem(401, "auth", "this needs a bearer token (Authorization: Bearer ...)")
        if verdict is False:
            return HTTPProblem(403, "auth", f"this token may not {needed.value} {resource!r}")
        # A token that is not valid here: the kind of failure the brake counts.
        self._failed(address)
        entry = self.grants.lookup(token)
        if entry is not None and self.grants.expired(entry):
            when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(entry["expires"]))
            return HTTPProblem(403, "auth", f"this token expired at {when}; ask the cluster's "
                               f"owner for a new one")
        return HTTPProblem(403, "auth", "this token is not valid for this cluster")

    def _failed(self, address: str) -> None:
        times = self._failures.setdefault(address, collections.deque())
        times.append(time.monotonic())
        if len(self._failures) > 10_000:  # bounded: forget addresses whose window has passed
            cutoff = time.monotonic() - WINDOW_SECONDS
            for a in [a for a, t in self._failures.items() if not t or t[-1] < cutoff]:
                del self._failures[a]

    def _check_not_blocked(self, address: str) -> None:
        times = self._failures.get(address)
        if not times:
            return
        now = time.monotonic()
        while times and times[0] < now - WINDOW_SECONDS:
            times.popleft()
        if len(times) >= self._limit:
            retry = max(1, int(times[0] + WINDOW_SECONDS - now) + 1)
            raise HTTPProblem(
                429, "rate_limited",
                f"too many requests with tokens that are not valid here came from {address} "
                f"({len(times)} in the last minute); try again in {retry} s",
                headers={"Retry-After": str(retry)})
