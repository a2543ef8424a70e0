"""What every route shares: errors answered as JSON, names, the bearer token, the caller's
address, query flags, request bodies read under a size limit, and answers built from a worker's
reply."""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
import logging
import re

import attrs
from starlette.datastructures import QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rh_core.transport import wire
from rh_server import protocol as P

log = logging.getLogger("rh_server")

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,127}$")
RESERVED = {"health", "status", "keys", "runs", "logs", "openapi.json", "docs", "resources",
            "auth", "objects", "commands", "call", "folder"}

#: HTTP status of each kind of error a worker or the server answers.
ERROR_STATUS = {"user": 500, "not_found": 404, "serialization": 500, "worker_crashed": 500,
                "run_not_found": 404, "run_failed": 424, "define": 422, "install": 422,
                "bad_request": 400, "auth": 401, "clash": 409, "too_large": 413,
                "rate_limited": 429, "cancelled": 409, "object_not_found": 404}


@attrs.frozen
class Limits:
    """The server's limits on what callers send (``python -m rh_server --help``)."""

    #: Largest request body from a caller whose token was accepted, in MiB.
    max_body_mb: int = 8192
    #: Largest request body from a caller without a token (JSON calls only), in MiB.
    anonymous_body_mb: int = 64
    #: Failed authentications one address may make in a minute before it gets 429.
    auth_failures_per_minute: int = 30


class HTTPProblem(Exception):
    """An error answered as JSON ``{"error": {...}}`` with an HTTP status."""

    def __init__(self, status: int, kind: str, message: str, headers: dict | None = None,
                 **extra):
        super().__init__(message)
        self.status, self.kind, self.message, self.extra = status, kind, message, extra
        self.headers = headers

    def payload(self) -> dict:
        return {"error": {"kind": self.kind, "message": self.message, **self.extra}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.payload(), status_code=self.status, headers=self.headers)


def bad_request(message: str) -> HTTPProblem:
    return HTTPProblem(400, "bad_request", message)


def check_name(name: str, what: str = "name") -> str:
    """``name`` if it can be served under (letters, digits, ``_``, ``-``; not a route's name)."""
    if not isinstance(name, str) or not NAME.match(name) or name in RESERVED:
        raise bad_request(
            f"bad {what} {name!r:.80}: use 1-128 letters, digits, '_' or '-', starting with a "
            f"letter or '_', and none of {sorted(RESERVED)}")
    return name


def bearer(request: Request) -> str | None:
    """The request's bearer token, None without one; a malformed header is a 401."""
    auth = request.headers.get("authorization")
    if not auth:
        return None
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise HTTPProblem(401, "auth", "malformed Authorization header; use 'Bearer <token>'")
    return value.strip()


def client_address(scope: dict, fronted: bool) -> str:
    """Who sent the request: the peer's address, or, behind the reverse proxy this server
    started (which reaches it over loopback and sets ``X-Forwarded-For`` itself), the last
    address the proxy added."""
    peer = (scope.get("client") or ("unknown", 0))[0]
    if fronted and _loopback(peer):
        for key, value in scope.get("headers") or ():
            if key == b"x-forwarded-for":
                return value.decode("latin-1").rsplit(",", 1)[-1].strip() or peer
    return peer


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class JSONRoute(Route):
    """A route whose "method not allowed" is a JSON error naming every method its path takes
    (``allowed`` is filled in by the app from all routes of the same path)."""

    allowed: frozenset[str] = frozenset()

    async def handle(self, scope, receive, send):
        if self.methods and scope["method"] not in self.methods:
            allowed = ", ".join(sorted(self.allowed or self.methods))
            problem = HTTPProblem(405, "bad_request", f"{scope['method']} is not allowed on "
                                  f"{scope['path']!r:.100}; use {allowed}",
                                  headers={"Allow": allowed})
            await problem.response()(scope, receive, send)
            return
        await super().handle(scope, receive, send)


async def not_found(scope, receive, send):
    """The JSON 404 of a path no route matches."""
    problem = HTTPProblem(404, "not_found", f"no route for {scope['method']} "
                          f"{scope['path']!r:.100}; see /openapi.json for the routes")
    await problem.response()(scope, receive, send)


def flag(where: Request | QueryParams, name: str) -> bool:
    """Whether the query parameter ``name`` is on (1, true or yes), from a request or its
    parameters."""
    q = where.query_params if isinstance(where, Request) else where
    return q.get(name, "").lower() in ("1", "true", "yes")


@functools.lru_cache(maxsize=256)
def parsed_query(raw: bytes) -> QueryParams:
    """A raw query string's parameters, parsed once per distinct string (a client sends the
    same few with every call); they are immutable, so one parse serves every request."""
    return QueryParams(raw)


async def read_body(request: Request, limit_mb: int) -> bytes:
    """The request body, or 413 as soon as it is known to be over ``limit_mb`` MiB (from its
    ``Content-Length``, or while reading a body sent without one)."""
    limit = limit_mb << 20
    size = request.headers.get("content-length")
    if size is not None:
        if not size.isdigit():
            raise bad_request("Content-Length must be a number of bytes")
        if int(size) > limit:
            raise _too_large(int(size), limit_mb)
        message = await request.receive()  # the usual small body comes whole, in one message
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunks = [message.get("body", b"")]
        if message.get("more_body", False):  # the rest as Starlette reads it
            chunks += [chunk async for chunk in request.stream()]
        return b"".join(chunks) if len(chunks) > 1 else chunks[0]
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(total, limit_mb)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit_mb: int) -> HTTPProblem:
    return HTTPProblem(
        413, "too_large",
        f"the request body ({size / 2**20:.1f} MiB or more) is over this server's limit of "
        f"{limit_mb} MiB for this caller; send less per call (or keep large data on the cluster), "
        f"or start the server with a higher --max-body-mb (the cluster's max_body_mb)")


def guarded(handler):
    """The handler, with an :class:`HTTPProblem` answered as its JSON and any other exception
    logged and answered as a JSON 500 that reveals nothing of it."""

    async def endpoint(request: Request):
        try:
            return await handler(request)
        except HTTPProblem as e:
            return e.response()
        except Exception:
            log.exception("unexpected error in %s %s", request.method, request.url.path)
            return JSONResponse({"error": {"kind": "internal", "message": "internal server "
                                           "error; the server log has the details"}},
                                status_code=500)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


# ------------------------------------------------------------------ answers from workers


def error_from_parts(parts: list, authenticated: bool) -> tuple[dict, bytes | None]:
    """A worker's ERROR reply: the JSON payload, and the pickled exception for callers who
    may unpickle (authenticated ones)."""
    payload = json.loads(bytes(parts[0]))
    pickled = bytes(parts[1]) if authenticated and len(parts) > 1 else None
    return payload, pickled


def error_body(payload: dict, pickled: bytes | None) -> dict:
    body = dict(payload)
    if pickled is not None:
        body["exc_pickle"] = base64.b64encode(pickled).decode()
    return {"error": body}


def error_response(payload: dict, pickled: bytes | None) -> JSONResponse:
    return JSONResponse(error_body(payload, pickled),
                        status_code=ERROR_STATUS.get(payload.get("kind"), 500))


class Result:
    """A call's result as its 200 response: the bytes with the two headers Starlette's
    ``Response`` would send (content length and type), without building them through it on the
    hot path."""

    __slots__ = ("body", "raw_headers")
    status_code = 200

    def __init__(self, body: bytes, content_type: bytes):
        self.body = body
        self.raw_headers = [(b"content-length", b"%d" % len(body)), (b"content-type", content_type)]

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body})


_RESULT_TYPES = {ser: ct.encode() for ser, ct in wire.SERIALIZATIONS.items()}


def answer(kind: bytes, got: list, ser: str, authenticated: bool) -> Result | Response:
    """The response to a call: the result's bytes, or the error."""
    if kind == P.RESULT:
        return Result(b"".join(got), _RESULT_TYPES[ser])
    return error_response(*error_from_parts(got, authenticated))
