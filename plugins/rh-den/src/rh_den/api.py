"""The store's JSON API under ``/v1``: one table of routes, from which the OpenAPI document is
also made (:mod:`rh_den.openapi`).

Each route declares who may call it (``anyone``: a token is optional; ``user``: a token is
needed; ``admin``), its query parameters and its body's schema. A handler is a plain function
run in a worker thread (the database is synchronous); every refusal is a :class:`DenError`
answered as ``{"error": {"kind", "message"}}`` with its status, never a 500.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import attrs
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rh_core.errors import ConfigError
from rh_core.resources.cluster import duration_seconds
from rh_den.accounts import User
from rh_den.catalog import RawJSON
from rh_den.den import Den
from rh_den.errors import DenError, bad

MAX_BODY = 8 * 1024 * 1024

STR_LIST = {"type": "array", "items": {"type": "string"}, "maxItems": 1000}


@attrs.frozen
class Api:
    """One route of the API."""

    method: str
    path: str
    handler: Callable
    summary: str
    who: str = "user"  # anyone | user | admin
    query: dict[str, dict] = attrs.field(factory=dict)
    body: dict | None = None
    status: int = 200


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise DenError(401, "auth", "malformed Authorization header; use 'Bearer <token>'")
    return value.strip()


async def read_json(request: Request) -> Any:
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_BODY:
        raise DenError(413, "too_large", f"the body is over {MAX_BODY >> 20} MiB")
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise DenError(413, "too_large", f"the body is over {MAX_BODY >> 20} MiB")
    try:
        return json.loads(bytes(data)) if data else {}
    except ValueError:
        raise bad("the body is not valid JSON") from None


def _query(request: Request, spec: dict[str, dict]) -> dict[str, Any]:
    out = {}
    for name, schema in spec.items():
        raw = request.query_params.get(name)
        if raw is None:
            if schema.get("required"):
                raise bad(f"the query needs {name}=")
            continue
        if schema.get("type") == "integer":
            if not raw.isdigit() or not 0 < int(raw) < 2 ** 31:
                raise bad(f"{name} must be a whole number above zero, got {raw!r:.40}")
            out[name] = int(raw)
        elif "enum" in schema and raw not in schema["enum"]:
            raise bad(f"{name} must be one of {', '.join(schema['enum'])}, got {raw!r:.40}")
        else:
            out[name] = raw
    return out


def _check_body(body: Any, schema: dict | None) -> dict:
    if schema is None:
        return {}
    if not isinstance(body, dict):
        raise bad("the body must be a JSON object")
    props = schema.get("properties", {})
    for key in body:
        if key not in props:
            raise bad(f"unknown field {key!r:.60}; known: {', '.join(props)}")
    for key in schema.get("required", []):
        if key not in body:
            raise bad(f"the body needs {key!r}")
    for key, value in body.items():
        want = props[key].get("type")
        kinds = {"string": str, "object": dict, "array": list, "boolean": bool,
                 "integer": int}
        if isinstance(want, list):  # e.g. ["integer", "null"]
            ok = any(value is None if w == "null" else _is(value, kinds[w]) for w in want)
        else:
            ok = want is None or _is(value, kinds[want])
        if not ok:
            raise bad(f"{key} must be {want}, got {type(value).__name__}")
        if want == "array" and not all(isinstance(v, str) for v in value):
            raise bad(f"{key} must be a list of names")
        if "enum" in props[key] and value not in props[key]["enum"]:
            raise bad(f"{key} must be one of {', '.join(map(str, props[key]['enum']))}")
    return body


def _is(value, kind) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def dumps(value) -> bytes:
    """JSON of an answer; a config kept as JSON text (:class:`RawJSON`) goes in as it is."""
    if isinstance(value, dict) and isinstance(value.get("config"), RawJSON):
        rest = json.dumps({k: v for k, v in value.items() if k != "config"},
                          separators=(",", ":"))
        return f'{{"config":{value["config"]},{rest[1:]}'.encode()
    return json.dumps(value, separators=(",", ":")).encode()


def endpoint(den: Den, api: Api):
    def work(token: str | None, params: dict):
        # One trip to a worker thread per request: who is asking, then what they asked.
        user = den.accounts.authenticate(token)
        if api.who != "anyone" and user is None:
            raise DenError(401, "auth", "this needs a token (Authorization: Bearer ...); "
                                        "log in with rh login URL --token TOKEN")
        if api.who == "admin" and not user.admin:
            raise DenError(403, "forbidden", f"only an admin may do this; {user.name} is not one")
        return api.handler(den, user, **params)

    # SQLite in WAL mode never makes a reader wait, so reads run on the event loop; PostgreSQL
    # (a network away) and every write go to a worker thread.
    inline = api.method == "GET" and den.sqlite is not None

    async def handle(request: Request):
        try:
            token = bearer(request)
            query = _query(request, api.query)
            body = _check_body(await read_json(request), api.body) if api.body else {}
            params = {**request.path_params, **query, **body}
            if inline:  # a read of SQLite: quicker here than the trip to a worker thread
                result = work(token, params)
            else:
                result = await run_in_threadpool(work, token, params)
            return Response(dumps(result), status_code=api.status, media_type="application/json")
        except DenError as e:
            return JSONResponse(e.payload(), status_code=e.status)

    return Route(api.path, handle, methods=[api.method])


class QuickLoads:
    """``GET /v1/resources/<name>`` (the latest version: every ``rh.load`` of an ``@`` name)
    answered before Starlette's middleware and routing, which cost more than the read itself
    (kept in memory, :mod:`rh_den.reads`). The same rules as the route: the token checked,
    the same answers and errors. Anything else, and a read that fails other than with the
    store's own error (a database gone: the app says so), goes to the app. SQLite only: there
    the read runs on the event loop anyway; PostgreSQL's go to a worker thread."""

    PREFIX = "/v1/resources/"

    def __init__(self, app, den: Den):
        self.app, self.den = app, den

    async def __call__(self, scope, receive, send):
        if (scope["type"] != "http" or scope["method"] != "GET" or scope["query_string"]
                or not scope["path"].startswith(self.PREFIX)):
            return await self.app(scope, receive, send)
        try:
            token = bearer(Request(scope))
            user = self.den.accounts.authenticate(token)
            status, body = 200, dumps(get_resource(self.den, user, scope["path"][len(self.PREFIX):]))
        except DenError as e:
            status, body = e.status, json.dumps(e.payload(), ensure_ascii=False,
                                                separators=(",", ":")).encode()
        except Exception:
            return await self.app(scope, receive, send)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------------------- handlers


def whoami(den: Den, user: User) -> dict:
    return {"user": user.name, "email": user.email, "admin": user.admin, "groups": list(user.groups),
            "token_id": user.token_id}


def get_resource(den: Den, user: User | None, path: str, version: int | None = None) -> dict:
    return den.catalog.get(user, path, version, raw=True)


def put_resource(den: Den, user: User, path: str, config: dict, base_version: int | None = None,
                 cluster: str | None = None) -> dict:
    return den.catalog.save(user, path, config, base_version, cluster)


def delete_resource(den: Den, user: User, path: str) -> dict:
    return den.catalog.delete(user, path)


def history(den: Den, user: User | None, path: str) -> list:
    return den.catalog.history(user, path)


def folder(den: Den, user: User | None, path: str) -> dict:
    return den.catalog.listing(user, path)


def shares(den: Den, user: User | None, path: str) -> dict:
    return den.catalog.shares(user, path)


def share(den: Den, user: User, path: str, principals: list | None = None,
          access_level: str = "read", visibility: str | None = None) -> dict:
    return den.catalog.share(user, path, principals or [], access_level, visibility)


def revoke(den: Den, user: User, path: str, principals: list) -> dict:
    return den.catalog.revoke(user, path, principals)


def shared(den: Den, user: User) -> list:
    return den.catalog.shared_with(user)


def authorize(den: Den, user: User, cluster: str, resource: str, level: str) -> dict:
    return {"allowed": den.catalog.authorize(user, cluster, resource, level), "user": user.name}


def _seconds(expires: str | None) -> float | None:
    if expires is None:
        return None
    try:
        return duration_seconds(expires)
    except ConfigError as e:
        raise bad(str(e)) from None


def tokens(den: Den, user: User) -> list:
    return den.accounts.list_tokens(user.name)


def create_token(den: Den, user: User, name: str = "default", expires: str | None = None) -> dict:
    token, info = den.accounts.create_token(user.name, name, _seconds(expires))
    return {"token": token, **info}


def revoke_token(den: Den, user: User, token_id: str) -> dict:
    return den.accounts.revoke_token(user.name, token_id)


def rotate_token(den: Den, user: User, token_id: str) -> dict:
    token, info = den.accounts.rotate_token(user.name, token_id)
    return {"token": token, **info}


def users(den: Den, user: User) -> list:
    return den.accounts.users()


def add_user(den: Den, user: User, name: str, email: str | None = None,
             admin: bool = False) -> dict:
    new, token = den.accounts.add_user(name, email, admin)
    return {"user": new.name, "email": new.email, "admin": new.admin, "token": token}


def groups(den: Den, user: User) -> list:
    return den.accounts.groups()


def add_group(den: Den, user: User, name: str, members: list | None = None) -> dict:
    return {"group": name, "members": den.accounts.add_group(name, members or [])}


def change_group(den: Den, user: User, name: str, add: list | None = None,
                 remove: list | None = None) -> dict:
    return {"group": name, "members": den.accounts.set_members(name, add or [], remove or [])}


def secret_keys(den: Den, user: User, prefix: str = "") -> dict:
    return {"keys": den.vault.keys(user, prefix)}


def get_secret(den: Den, user: User, key: str) -> dict:
    return den.vault.get(user, key)


def put_secret(den: Den, user: User, key: str, value: str) -> dict:
    return den.vault.put(user, key, value)


def delete_secret(den: Den, user: User, key: str) -> dict:
    return den.vault.delete(user, key)


VERSION = {"type": "integer", "minimum": 1}
LEVEL = {"type": "string", "enum": ["read", "write"]}

ROUTES = [
    Api("GET", "/v1/whoami", whoami, "who the token belongs to"),
    Api("GET", "/v1/resources/{path:path}", get_resource, "a saved config (latest or a version)",
        who="anyone", query={"version": VERSION}),
    Api("PUT", "/v1/resources/{path:path}", put_resource,
        "save a config as the next version; 409 when base_version is not the latest",
        body={"type": "object", "required": ["config"], "properties": {
            "config": {"type": "object"}, "base_version": {"type": ["integer", "null"]},
            "cluster": {"type": ["string", "null"]}}}),
    Api("DELETE", "/v1/resources/{path:path}", delete_resource, "delete a resource and its versions"),
    Api("GET", "/v1/history/{path:path}", history, "versions, newest first", who="anyone"),
    Api("GET", "/v1/folders/{path:path}", folder, "resources and subfolders in a folder",
        who="anyone"),
    Api("GET", "/v1/shares/{path:path}", shares, "visibility and shares of a resource",
        who="anyone"),
    Api("POST", "/v1/shares/{path:path}", share, "share with users or groups; set visibility",
        body={"type": "object", "properties": {
            "principals": STR_LIST, "access_level": LEVEL,
            "visibility": {"type": "string", "enum": ["private", "unlisted", "public"]}}}),
    Api("POST", "/v1/revoke/{path:path}", revoke, "take shares back",
        body={"type": "object", "required": ["principals"], "properties": {"principals": STR_LIST}}),
    Api("GET", "/v1/shared", shared, "resources others shared with you"),
    Api("GET", "/v1/authorize", authorize,
        "may this token use a resource on a cluster (asked by clusters with den_auth)",
        query={"cluster": {"type": "string", "required": True},
               "resource": {"type": "string", "required": True},
               "level": {**LEVEL, "required": True}}),
    Api("GET", "/v1/tokens", tokens, "your tokens (never the tokens themselves)"),
    Api("POST", "/v1/tokens", create_token, "a new token, shown once", status=201,
        body={"type": "object", "properties": {"name": {"type": "string"},
                                               "expires": {"type": ["string", "null"]}}}),
    Api("DELETE", "/v1/tokens/{token_id}", revoke_token, "revoke one of your tokens"),
    Api("POST", "/v1/tokens/{token_id}/rotate", rotate_token,
        "revoke a token and make its successor", status=201),
    Api("GET", "/v1/secrets", secret_keys, "the keys of your secret values",
        query={"prefix": {"type": "string"}}),
    Api("GET", "/v1/secrets/{key:path}", get_secret, "one of your secret values"),
    Api("PUT", "/v1/secrets/{key:path}", put_secret, "keep a secret value (encrypted)",
        body={"type": "object", "required": ["value"], "properties": {
            "value": {"type": "string"}}}),
    Api("DELETE", "/v1/secrets/{key:path}", delete_secret, "forget a secret value"),
    Api("GET", "/v1/users", users, "users (admins)", who="admin"),
    Api("POST", "/v1/users", add_user, "add a user; answers their first token", who="admin",
        status=201, body={"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "email": {"type": ["string", "null"]},
            "admin": {"type": "boolean"}}}),
    Api("GET", "/v1/groups", groups, "groups and their members"),
    Api("POST", "/v1/groups", add_group, "add a group (admins)", who="admin", status=201,
        body={"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string"}, "members": STR_LIST}}),
    Api("PATCH", "/v1/groups/{name}", change_group, "add or remove members (admins)",
        who="admin", body={"type": "object", "properties": {"add": STR_LIST, "remove": STR_LIST}}),
]


def routes(den: Den) -> list[Route]:
    return [endpoint(den, api) for api in ROUTES]
