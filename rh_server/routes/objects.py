"""``/objects...``: objects kept on the cluster under keys (``cluster.put``/``get``/``delete``).

Reading one is read access on its key, putting or deleting one write access; a pickled object
is put only by a caller with write access (it will be unpickled in workers) and read only by a
pickle caller (the server cannot turn it into JSON). Needs the auth part and the object store.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rh_core.plugin import AccessLevel, ServerContext
from rh_core.transport import wire
from rh_server.auth import Auth
from rh_server.objects import ObjectStore
from rh_server.runs import RUN_KEY
from rh_server.web import HTTPProblem, JSONRoute, Limits, bad_request, flag, guarded, read_body


def check_key(key: str) -> str:
    if not RUN_KEY.match(key):
        raise bad_request(f"bad object key {key!r:.80}: use 1-200 letters, digits and _.@:-")
    return key


def routes(auth: Auth, objects: ObjectStore, ctx: ServerContext,
           limits: Limits) -> list[JSONRoute]:
    def missing(key: str) -> HTTPProblem:
        return HTTPProblem(404, "object_not_found", f"key {key} not found on cluster "
                           f"{ctx.cluster_name!r}: nothing was put under it, it was deleted, or "
                           f"the server restarted since (objects live in its memory)")

    async def put(request: Request):
        """Keep the body (an rh pickle body, or JSON) under the key."""
        key = check_key(request.path_params["key"])
        auth.check(request, key, AccessLevel.WRITE)
        ctype = request.headers.get("content-type", wire.JSON_CT).split(";")[0].strip()
        raw = await read_body(request, limits.max_body_mb)
        if ctype == wire.PICKLE_CT:
            try:  # buffers sent through shared memory are taken into the object
                data = wire.joined(wire.inline(raw, ctx.settings.get("shm_dir")))
            except (ValueError, OSError) as e:
                raise bad_request(f"the body is not an rh pickle body: {e}") from None
            stored = objects.put(key, "pickle", data)
        elif ctype == wire.JSON_CT:
            try:
                json.loads(raw)
            except (ValueError, RecursionError) as e:
                raise bad_request(f"the body is not valid JSON: {e}") from None
            stored = objects.put(key, "json", bytes(raw))
        else:
            raise bad_request(f"unknown serialization {ctype!r}; use {wire.JSON_CT} or "
                              f"{wire.PICKLE_CT}")
        return JSONResponse(stored.summary(key))

    async def get(request: Request):
        key = check_key(request.path_params["key"])
        auth.check(request, key, AccessLevel.READ)
        stored = objects.get(key)
        if stored is None:
            raise missing(key)
        if stored.ser == "json":
            return Response(stored.data, media_type=wire.JSON_CT)
        accept = request.headers.get("accept", "")
        if wire.PICKLE_CT not in accept:
            raise HTTPProblem(406, "bad_request", f"{key} holds a pickled object; read it from "
                              f"Python (cluster.get) or ask with Accept: {wire.PICKLE_CT}")
        shm_dir = ctx.settings.get("shm_dir")
        if shm_dir and flag(request, "rh_shm"):  # a reader on this machine: large buffers by file
            return Response(wire.joined(wire.to_shm(stored.data, shm_dir)),
                            media_type=wire.PICKLE_CT)
        return Response(stored.data, media_type=wire.PICKLE_CT)

    async def delete(request: Request):
        key = check_key(request.path_params["key"])
        auth.check(request, key, AccessLevel.WRITE)
        if not objects.delete(key):
            raise missing(key)
        return JSONResponse({"deleted": key})

    async def listing(request: Request):
        auth.check(request, "*", AccessLevel.READ)
        return JSONResponse({"objects": [s.summary(k) for k, s in sorted(
            objects.objects.items())]})

    return [
        JSONRoute("/objects", guarded(listing), methods=["GET"]),
        JSONRoute("/objects/{key}", guarded(get), methods=["GET"]),
        JSONRoute("/objects/{key}", guarded(put), methods=["PUT"]),
        JSONRoute("/objects/{key}", guarded(delete), methods=["DELETE"]),
    ]
