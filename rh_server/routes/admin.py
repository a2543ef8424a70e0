"""``/health``, ``/restart``, the server's own ``/logs`` (and its access log), and
``/auth/tokens``: tokens
the cluster's owner gives to other users. Needs the auth part and its grants, and the context's
log files; nothing of the served names or runs."""

from __future__ import annotations

import json
import logging
import os
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse

from rh_core import __version__
from rh_core.plugin import AccessLevel, ServerContext
from rh_server.auth import Auth
from rh_server.idle import Idle
from rh_server.web import HTTPProblem, JSONRoute, bad_request, check_name, flag, guarded, read_body

log = logging.getLogger("rh_server")

MAX_LOG_BYTES = 1 << 20
MAX_GRANT_BYTES_MB = 1
MAX_EXPIRES_IN = 100 * 365 * 86400


def routes(auth: Auth, ctx: ServerContext, idle: Idle, life) -> list[JSONRoute]:
    grants = auth.grants

    async def health(request: Request):
        """Liveness, version and PID, calls running and idleness (for the idle rule); no auth."""
        return JSONResponse({"status": "ok", "version": __version__, "pid": os.getpid(),
                             "cluster": ctx.cluster_name, "calls_running": idle.calls_running,
                             "idle_seconds": round(idle.idle_seconds(), 3),
                             "autostop_mins": ctx.settings.get("autostop_mins")})

    async def server_log(request: Request):
        """The last MiB of the server's log, or with ``access=1`` of its access log."""
        auth.check(request, "*", AccessLevel.WRITE)
        path = ctx.settings.get("access_log" if flag(request, "access") else "log_file")
        if not path or not os.path.exists(path):
            return PlainTextResponse("")
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - MAX_LOG_BYTES))
            return PlainTextResponse(f.read().decode(errors="replace"))

    async def create_token(request: Request):
        auth.owner_only(request, "manage its tokens")
        raw = await read_body(request, MAX_GRANT_BYTES_MB)
        try:
            spec = json.loads(raw)
            user = spec["user"]
            access = AccessLevel(spec.get("access", "read"))
            resources = spec.get("resources") or ["*"]
            if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
                raise TypeError("'resources' must be a list of names")
            expires_in = spec.get("expires_in")
            if expires_in is not None and (isinstance(expires_in, bool) or not isinstance(
                    expires_in, (int, float)) or not 0 < expires_in <= MAX_EXPIRES_IN):
                raise TypeError(f"'expires_in' must be a number of seconds above 0 and at most "
                                f"{MAX_EXPIRES_IN} (100 years)")
        except (ValueError, KeyError, TypeError) as e:
            raise bad_request("give {'user': NAME, 'access': 'read'|'write', 'resources': "
                              f"[NAMES or '*'], 'expires_in': SECONDS or null}} ({e})") from None
        if not isinstance(user, str) or not user or len(user) > 200 or access == AccessLevel.NONE:
            raise bad_request("user must be a name and access read or write")
        for r in resources:
            if r != "*":
                check_name(r, "resource name")
        expires = time.time() + expires_in if expires_in is not None else None
        entry, token = grants.create(user, {r: access.value for r in resources}, expires)
        log.info("token %s created for user %s (%s on %s%s)", entry["id"], user, access.value,
                 ",".join(resources), f", expires {time.ctime(expires)}" if expires else "")
        return JSONResponse({**entry, "token": token}, status_code=201)

    async def list_tokens(request: Request):
        auth.owner_only(request, "manage its tokens")
        return JSONResponse({"tokens": grants.list()})

    async def revoke_token(request: Request):
        auth.owner_only(request, "manage its tokens")
        gone = grants.revoke(request.path_params["who"])
        if not gone:
            raise HTTPProblem(404, "not_found", "no token with that id or user")
        auth.forget()
        log.info("tokens revoked: %s", ",".join(gone))
        return JSONResponse({"revoked": gone})

    async def restart(request: Request):
        """The owner asks for a new server process: this one stops (the calls running finish
        first, as on SIGTERM) and exits with code 75, which the program supervising it (a
        SageMaker job's node program) reads as "start it again". A server nobody supervises
        refuses: its provider restarts it (``c.restart_server()``)."""
        auth.owner_only(request, "restart its server")
        if ctx.settings.get("supervised") is not True:
            raise HTTPProblem(409, "not_supervised", f"the server of {ctx.cluster_name!r} is "
                              f"not run by a supervisor that would start it again; restart it "
                              f"through its cluster: c.restart_server() or `rh restart "
                              f"{ctx.cluster_name}`")
        log.info("restart asked by the owner: stopping, to be started again")
        life.restart = True
        life.stop.set()
        return JSONResponse({"restarting": True, "pid": os.getpid()}, status_code=202)

    return [
        JSONRoute("/health", guarded(health), methods=["GET"]),
        JSONRoute("/restart", guarded(restart), methods=["POST"]),
        JSONRoute("/logs", guarded(server_log), methods=["GET"]),
        JSONRoute("/auth/tokens", guarded(create_token), methods=["POST"]),
        JSONRoute("/auth/tokens", guarded(list_tokens), methods=["GET"]),
        JSONRoute("/auth/tokens/{who}", guarded(revoke_token), methods=["DELETE"]),
    ]
