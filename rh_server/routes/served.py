"""``PUT|DELETE /{name}`` (serve or stop serving code under a name), ``/keys`` and ``/status``.

Putting code is write access on the name: it runs any code as the server's user.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse

from rh_core.plugin import AccessLevel
from rh_server.auth import Auth
from rh_server.runs import RunStore
from rh_server.served import Served
from rh_server.web import JSONRoute, Limits, bad_request, check_name, guarded, read_body


def routes(auth: Auth, served: Served, runs: RunStore, limits: Limits) -> list[JSONRoute]:
    async def put(request: Request):
        """Serve a function, class or instance under the name (see docs/server.md)."""
        name = check_name(request.path_params["name"])
        auth.check(request, name, AccessLevel.WRITE)
        try:
            spec = json.loads(await read_body(request, limits.max_body_mb))
        except (ValueError, RecursionError) as e:
            raise bad_request(f"the body is not valid JSON: {e}") from None
        if not isinstance(spec, dict):
            raise bad_request("the body must be a JSON object")
        spec["name"] = name
        await served.restored.wait()
        return JSONResponse(await served.put(spec))

    async def delete(request: Request):
        name = check_name(request.path_params["name"])
        auth.check(request, name, AccessLevel.WRITE)
        if not await served.delete(name):
            served.lookup(name)  # 404, listing what is served
        return JSONResponse({"deleted": name})

    async def patch(request: Request):
        """Change what is served under the name: ``{"rename": NEW}`` serves a class under NEW
        instead (its instances keep working)."""
        name = check_name(request.path_params["name"])
        auth.check(request, name, AccessLevel.WRITE)
        try:
            change = json.loads(await read_body(request, 1))
            new = change["rename"]
        except (ValueError, KeyError, TypeError, RecursionError):
            raise bad_request("give {'rename': NEW_NAME}") from None
        check_name(new)
        auth.check(request, new, AccessLevel.WRITE)
        await served.restored.wait()
        return JSONResponse(await served.rename(name, new))

    async def keys(request: Request):
        auth.check(request, "*", AccessLevel.READ)
        await served.restored.wait()  # after a restart, the names come back before they are listed
        return JSONResponse({"keys": sorted(served.resources), "runs": sorted(runs.runs)})

    async def status(request: Request):
        auth.check(request, "*", AccessLevel.READ)
        await served.restored.wait()
        return JSONResponse({**served.status(), "runs": len(runs.runs)})

    return [
        JSONRoute("/keys", guarded(keys), methods=["GET"]),
        JSONRoute("/status", guarded(status), methods=["GET"]),
        JSONRoute("/{name}", guarded(put), methods=["PUT"]),
        JSONRoute("/{name}", guarded(delete), methods=["DELETE"]),
        JSONRoute("/{name}", guarded(patch), methods=["PATCH"]),
    ]
