"""The server's HTTP app: builds its parts, gives each router the narrow part it needs, and sends
calls (the hot path) to their handler without route matching. See docs/server.md for the routes.

The parts, and what each owns:

- :class:`~rh_server.auth.Auth`: who may do what; owns the grants (tokens for other users) and
  the record of failed authentications;
- :class:`~rh_server.served.Served`: the served names and the env worker pools that run them;
- :class:`~rh_server.runs.RunStore`: results kept on the cluster and their logs;
- :class:`~rh_server.objects.ObjectStore`: objects put on the cluster under keys;
- :class:`~rh_server.dispatch.Dispatcher`: sending calls to workers in each mode, the order of
  enqueued calls, the background tasks of async runs;
- :class:`~rh_server.access_log.AccessLog`: one line per request.
"""

from __future__ import annotations

import asyncio
import secrets
import time

import attrs
from starlette.requests import Request
from starlette.routing import Router

from rh_core.plugin import ServerContext
from rh_server.access_log import AccessLog
from rh_server.auth import Auth
from rh_server.dispatch import Dispatcher
from rh_server.grants import GrantsAuth, TokenStore
from rh_server.idle import Idle
from rh_server.objects import ObjectStore
from rh_server.routes import admin as admin_routes
from rh_server.routes import calls as call_routes
from rh_server.routes import commands as command_routes
from rh_server.routes import folders as folder_routes
from rh_server.routes import objects as object_routes
from rh_server.routes import openapi as openapi_routes
from rh_server.routes import runs as run_routes
from rh_server.routes import secrets as secret_routes
from rh_server.routes import served as served_routes
from rh_server.runs import RunStore
from rh_server.served import Served
from rh_server.web import JSONRoute, Limits, not_found

#: First parts of two-part paths that are routes of their own, not ``/{name}/{method}`` calls.
NOT_CALLS = ("runs", "auth", "objects", "folder")


@attrs.define
class Lifecycle:
    """How the server ends: ``stop`` set by a signal, the idle rule or a restart request;
    ``restart`` when its supervisor (``--setting supervised=true``) should start it again, which
    it reads from the exit code :data:`RESTART_EXIT`."""

    stop: asyncio.Event = attrs.field(factory=asyncio.Event)
    restart: bool = False


#: The exit code that asks the program supervising the server to start it again.
RESTART_EXIT = 75


@attrs.define
class App:
    """The ASGI app and its parts (the server's main starts and stops them)."""

    asgi: object
    routes: list[JSONRoute]
    auth: Auth
    served: Served
    runs: RunStore
    objects: ObjectStore
    dispatch: Dispatcher
    access: AccessLog
    idle: Idle
    life: Lifecycle

    async def __call__(self, scope, receive, send):
        await self.asgi(scope, receive, send)

    async def shutdown(self) -> None:
        await self.served.shutdown()
        self.access.close()


def build_app(ctx: ServerContext, owner_token: str | None, pm, limits: Limits = Limits(),
              access_log: bool = True) -> App:
    """The app of one server. ``pm`` is the plugin manager whose ``rh_server_auth_check``
    decides tokens other than the owner's; the built-in check of granted tokens is added to it."""
    state_dir = ctx.rh_home / "server" / ctx.cluster_name
    grants = TokenStore(state_dir / "tokens.json")
    pm.register(GrantsAuth(grants), name="rh_server.grants")
    worker_token = "rhw_" + secrets.token_urlsafe(32)  # for code in the env workers: rh.here
    auth = Auth(ctx, owner_token, pm, grants, limits.auth_failures_per_minute, worker_token)
    served = Served(ctx, here_env(ctx, worker_token))
    runs = RunStore()
    objects = ObjectStore()
    dispatch = Dispatcher(served, runs, objects)
    idle = Idle(dispatch.active)
    life = Lifecycle()
    if access_log:
        ctx.settings["access_log"] = str(state_dir / "access.log")
    access = AccessLog(state_dir / "access.log" if access_log else None, auth.fronted)

    call = call_routes.call_handler(auth, served, dispatch, limits)
    # Order matters where paths overlap: /runs/{key}, /auth/tokens and /folder/... before
    # /{name}/{method}.
    routes = [
        *admin_routes.routes(auth, ctx, idle, life),
        *run_routes.routes(auth, runs, dispatch.active),
        *object_routes.routes(auth, objects, ctx, limits),
        *folder_routes.routes(auth, ctx, limits),
        *call_routes.routes(call),
        *served_routes.routes(auth, served, runs, limits),
        *openapi_routes.routes(auth),
        *command_routes.routes(auth, served),
        *secret_routes.routes(auth, served),
    ]
    for route in routes:  # a 405 names every method the path takes, from all its routes
        route.allowed = frozenset(m for r in routes if r.path == route.path for m in r.methods)
    # A bare Router: no middleware layers; handlers are guarded; unknown paths get JSON 404s.
    router = Router(routes=routes, default=not_found)

    async def asgi(scope, receive, send):
        if scope["type"] != "http":
            await router(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        working = scope["path"] != "/health"  # the idle rule: a health poll is not work
        if working:
            idle.enter()

        async def send_and_note(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            method = scope["method"]
            path = scope["path"]
            rest = path[6:] if path.startswith("/call/") else path[1:]  # Runhouse's /call/ prefix
            name, slash, meth = rest.partition("/")
            if method in ("GET", "POST") and slash and name and meth and name not in NOT_CALLS \
                    and "/" not in meth:
                scope["path_params"] = {"name": name, "method": meth}
                response = await call(Request(scope, receive))
                await response(scope, receive, send_and_note)
            else:
                await router(scope, receive, send_and_note)
        finally:
            if working:
                idle.leave()
            access.write(scope, status, started)

    return App(asgi, routes, auth, served, runs, objects, dispatch, access, idle, life)


def here_env(ctx: ServerContext, worker_token: str) -> dict:
    """How code in this server's env workers reaches the server (``rh.here``): its address,
    the certificate to trust, and a token of its own (never the owner's)."""
    host = "127.0.0.1" if ctx.host in ("0.0.0.0", "", "localhost") else ctx.host
    host = "[::1]" if host == "::" else (f"[{host}]" if ":" in host else host)
    cert = ctx.settings.get("certfile")
    env = {"RH_CLUSTER_NAME": ctx.cluster_name,
           "RH_CLUSTER_URL": f"{'https' if cert else 'http'}://{host}:{ctx.port}",
           "RH_CLUSTER_TOKEN": worker_token}
    if cert:
        env["RH_CLUSTER_CA"] = str(cert)
    return env
