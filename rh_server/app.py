"""The HTTP surface of a cluster node (Starlette). See docs/server.md for every route."""

from __future__ import annotations

import asyncio
import json
import logging
import os

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, Router

from rh_core import __version__
from rh_core.plugin.interfaces import AccessLevel
from rh_core.transport import wire
from rh_server import calls
from rh_server import protocol as P
from rh_server.openapi import openapi_document
from rh_server.runs import RUN_KEY, Run, new_run_key
from rh_server.state import HTTPProblem, ServerState, check_name

log = logging.getLogger("rh_server")

MAX_LOG_BYTES = 1 << 20
MAX_BODY = 64 << 30  # callers with write access (large arrays go to remote clusters this way)
MAX_ANON_BODY = 64 << 20  # everyone else: JSON arguments


def _check_size(request: Request, limit: int) -> None:
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > limit):
        raise HTTPProblem(413, "bad_request", f"the body is larger than {limit >> 20} MiB, the "
                          f"most this caller may send")


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if not auth:
        return None
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise HTTPProblem(401, "auth", "malformed Authorization header; use 'Bearer <token>'")
    return value.strip()


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").lower() in ("1", "true", "yes")


def _problem(e: HTTPProblem) -> JSONResponse:
    return JSONResponse(e.payload(), status_code=e.status)


def _query_kwargs(request: Request) -> dict:
    kwargs = {}
    for key, value in request.query_params.multi_items():
        if key.startswith("rh_"):
            continue
        try:
            kwargs[key] = json.loads(value)
        except ValueError:
            kwargs[key] = value
    return kwargs


def _json_args(body: bytes) -> bytes:
    if not body.strip():
        return b""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise HTTPProblem(400, "bad_request", f"the body is not valid JSON: {e}") from None
    if isinstance(data, list):
        data = {"args": data, "kwargs": {}}
    elif isinstance(data, dict) and set(data) <= {"args", "kwargs"} and data:
        if not isinstance(data.get("args", []), list) or not isinstance(data.get("kwargs", {}), dict):
            raise HTTPProblem(400, "bad_request", "'args' must be a list and 'kwargs' an object")
    elif isinstance(data, dict):
        data = {"args": [], "kwargs": data}
    else:
        raise HTTPProblem(400, "bad_request",
                          "a JSON body is {'args': [...], 'kwargs': {...}}, a list of args or an "
                          "object of kwargs")
    return json.dumps(data).encode()


def build_app(state: ServerState):
    def guarded(handler):
        async def endpoint(request: Request):
            try:
                return await handler(request)
            except HTTPProblem as e:
                return _problem(e)
            except Exception:
                log.exception("unexpected error in %s %s", request.method, request.url.path)
                return JSONResponse({"error": {"kind": "internal", "message": "internal server "
                                               "error; the server log has the details"}},
                                    status_code=500)

        endpoint.__name__ = handler.__name__
        return endpoint

    async def health(request: Request):
        return JSONResponse({"status": "ok", "version": __version__, "pid": os.getpid(),
                             "cluster": state.ctx.cluster_name})

    async def openapi(request: Request):
        state.authorize(_token(request), "*", AccessLevel.READ)
        return JSONResponse(openapi_document(__version__))

    async def status(request: Request):
        state.authorize(_token(request), "*", AccessLevel.READ)
        return JSONResponse(state.status())

    async def keys(request: Request):
        state.authorize(_token(request), "*", AccessLevel.READ)
        return JSONResponse({"keys": sorted(state.resources), "runs": sorted(state.runs.runs)})

    async def server_log(request: Request):
        state.authorize(_token(request), "*", AccessLevel.WRITE)
        path = state.ctx.settings.get("log_file")
        if not path or not os.path.exists(path):
            return PlainTextResponse("")
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - MAX_LOG_BYTES))
            return PlainTextResponse(f.read().decode(errors="replace"))

    async def put(request: Request):
        name = check_name(request.path_params["name"])
        state.authorize(_token(request), name, AccessLevel.WRITE)
        try:
            spec = json.loads(await request.body())
        except (ValueError, RecursionError) as e:
            raise HTTPProblem(400, "bad_request", f"the body is not valid JSON: {e}") from None
        if not isinstance(spec, dict):
            raise HTTPProblem(400, "bad_request", "the body must be a JSON object")
        spec["name"] = name
        await state.restored.wait()
        return JSONResponse(await state.put(spec))

    async def delete(request: Request):
        name = check_name(request.path_params["name"])
        state.authorize(_token(request), name, AccessLevel.WRITE)
        if not await state.delete(name):
            state.lookup(name)
        return JSONResponse({"deleted": name})

    async def call(request: Request):
        name, method = request.path_params["name"], request.path_params["method"]
        token = _token(request)
        authenticated = state.authorize(token, name, AccessLevel.READ)
        if not state.restored.is_set():
            await state.restored.wait()
        res = state.lookup(name)
        if request.method == "GET":
            ser, body = "json", json.dumps({"args": [], "kwargs": _query_kwargs(request)}).encode()
        else:
            ctype = request.headers.get("content-type", wire.JSON_CT).split(";")[0].strip()
            writer = ctype == wire.PICKLE_CT and state.may(token, name, AccessLevel.WRITE)
            if ctype == wire.PICKLE_CT and not writer:
                raise HTTPProblem(
                    401 if token is None else 403, "auth",
                    "pickled arguments are accepted only from an authenticated caller with "
                    "write access (unpickling runs code); send JSON instead")
            _check_size(request, MAX_BODY if writer or authenticated else MAX_ANON_BODY)
            raw = await request.body()
            if ctype == wire.PICKLE_CT:
                ser, body = "pickle", raw
            elif ctype in (wire.JSON_CT, "text/plain", ""):
                ser, body = "json", _json_args(raw)
            else:
                raise HTTPProblem(400, "bad_request", f"unknown serialization {ctype!r}; use "
                                  f"{wire.JSON_CT} or {wire.PICKLE_CT}")
        q = request.query_params
        refs = [r for r in q.get("rh_refs", "").split(",") if r]
        header = {"name": name, "method": method, "ser": ser, "refs": refs}
        enqueue = _flag(request, "rh_enqueue")
        shm_dir = state.ctx.settings.get("shm_dir")
        if shm_dir and ser == "pickle" and _flag(request, "rh_shm") and not _flag(request, "rh_async"):
            header["shm"] = shm_dir  # the caller shares this machine: large results go there

        if _flag(request, "rh_map"):
            if ser != "pickle":
                raise HTTPProblem(400, "bad_request", "map takes a pickled body")
            try:
                header["offsets"] = [int(o) for o in json.loads(q.get("rh_offsets", "[]"))]
            except (ValueError, TypeError):
                raise HTTPProblem(400, "bad_request", "rh_offsets must be a JSON list of ints") from None
            kind, got = await calls.run_map(state, res, header, body)
            return _answer(kind, got, ser, ser == "pickle")

        if _flag(request, "rh_async"):
            key = q.get("rh_run_key") or new_run_key(name)
            if not RUN_KEY.match(key) or state.runs.get(key) is not None:
                raise HTTPProblem(400, "bad_request", f"bad or reused run key {key!r:.80}")
            run = state.runs.add(Run(key, name, method, ser))
            header["logs"] = True
            state.spawn(calls.run_to_store(state, run, res, header, body, enqueue, ser == "pickle"))
            return JSONResponse({"run_key": key}, status_code=202)

        if _flag(request, "rh_stream"):
            header["logs"] = header["stream"] = True
            media = wire.NDJSON_CT if ser == "json" else wire.STREAM_CT
            return StreamingResponse(
                calls.stream_frames(state, res, header, body, ser == "pickle", enqueue),
                media_type=media,
            )

        if enqueue:
            kind, got = await calls.in_order(
                state, name, lambda: calls.collect(state, res, header, body))
        else:
            kind, got = await calls.collect(state, res, header, body)
        return _answer(kind, got, ser, ser == "pickle")

    async def get_run(request: Request):
        key = request.path_params["key"]
        run = _run(key, _token(request), AccessLevel.READ)
        if not _flag(request, "rh_nowait"):
            await run.done.wait()
        elif not run.done.is_set():
            return JSONResponse(run.summary(), status_code=202)
        if run.error is not None:
            payload, pickled = run.error
            return JSONResponse(calls.error_body(payload, pickled),
                                status_code=calls.ERROR_STATUS.get(payload.get("kind"), 500))
        return Response(run.result, media_type=wire.SERIALIZATIONS[run.ser])

    async def delete_run(request: Request):
        key = request.path_params["key"]
        _run(key, _token(request), AccessLevel.WRITE)
        state.runs.delete(key)
        return JSONResponse({"deleted": key})

    async def list_runs(request: Request):
        state.authorize(_token(request), "*", AccessLevel.READ)
        return JSONResponse({"runs": [r.summary() for r in state.runs.runs.values()]})

    async def run_logs(request: Request):
        run = _run(request.path_params["key"], _token(request), AccessLevel.READ)

        async def lines():
            sent = 0
            while True:
                while sent < len(run.logs):
                    yield run.logs[sent]["text"].encode()
                    sent += 1
                if run.done.is_set():
                    return
                async with run.changed:
                    await asyncio.wait_for(run.changed.wait(), timeout=None)

        return StreamingResponse(lines(), media_type="text/plain")

    def _owner(request: Request) -> None:
        token = _token(request)
        if not state.is_owner(token):
            raise HTTPProblem(401 if token is None else 403, "auth",
                              "only the cluster's owner may manage its tokens")

    async def create_token(request: Request):
        _owner(request)
        try:
            spec = json.loads(await request.body())
            user = spec["user"]
            access = AccessLevel(spec.get("access", "read"))
            resources = spec.get("resources") or ["*"]
            if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
                raise TypeError("'resources' must be a list of names")
        except (ValueError, KeyError, TypeError) as e:
            raise HTTPProblem(400, "bad_request", "give {'user': NAME, 'access': 'read'|'write', "
                              f"'resources': [NAMES or '*']}} ({e})") from None
        if not isinstance(user, str) or not user or len(user) > 200 or access == AccessLevel.NONE:
            raise HTTPProblem(400, "bad_request", "user must be a name and access read or write")
        for r in resources:
            if r != "*":
                check_name(r, "resource name")
        entry, token = state.grants.create(user, {r: access.value for r in resources})
        log.info("token %s created for user %s (%s on %s)", entry["id"], user, access.value,
                 ",".join(resources))
        return JSONResponse({**entry, "token": token}, status_code=201)

    async def list_tokens(request: Request):
        _owner(request)
        return JSONResponse({"tokens": state.grants.list()})

    async def revoke_token(request: Request):
        _owner(request)
        gone = state.grants.revoke(request.path_params["who"])
        if not gone:
            raise HTTPProblem(404, "not_found", "no token with that id or user")
        state.forget_auth()
        log.info("tokens revoked: %s", ",".join(gone))
        return JSONResponse({"revoked": gone})

    def _run(key: str, token: str | None, access: AccessLevel) -> Run:
        """The run ``key``, if the caller has ``access`` on the function it belongs to."""
        run = state.runs.get(key)
        if run is None:
            state.authorize(token, "*", access)  # no hint about which keys exist
            raise HTTPProblem(404, "run_not_found",
                              f"no run {key!r:.80} on this cluster: it was never made, was "
                              f"deleted, or the server restarted since")
        state.authorize(token, run.name, access)
        return run

    # The call route comes early (it is the hot path); only /runs/... and /auth/... can also
    # match it, so they come first.
    routes = [
        Route("/health", guarded(health), methods=["GET"]),
        Route("/runs/{key}", guarded(get_run), methods=["GET"]),
        Route("/runs/{key}", guarded(delete_run), methods=["DELETE"]),
        Route("/auth/tokens", guarded(create_token), methods=["POST"]),
        Route("/auth/tokens", guarded(list_tokens), methods=["GET"]),
        Route("/auth/tokens/{who}", guarded(revoke_token), methods=["DELETE"]),
        Route("/{name}/{method}", guarded(call), methods=["GET", "POST"]),
        Route("/runs/{key}/logs", guarded(run_logs), methods=["GET"]),
        Route("/openapi.json", guarded(openapi), methods=["GET"]),
        Route("/status", guarded(status), methods=["GET"]),
        Route("/keys", guarded(keys), methods=["GET"]),
        Route("/logs", guarded(server_log), methods=["GET"]),
        Route("/runs", guarded(list_runs), methods=["GET"]),
        Route("/{name}", guarded(put), methods=["PUT"]),
        Route("/{name}", guarded(delete), methods=["DELETE"]),
    ]
    # A bare Router: no middleware layers; ``guarded`` answers every error.
    router = Router(routes=routes)
    guarded_call = guarded(call)

    async def app(scope, receive, send):
        """Calls (the hot path) skip route matching; everything else goes to the router."""
        if scope["type"] == "http" and scope["method"] in ("GET", "POST"):
            _, _, rest = scope["path"].partition("/")
            name, slash, method = rest.partition("/")
            if slash and name and method and name not in ("runs", "auth") and "/" not in method:
                scope["path_params"] = {"name": name, "method": method}
                response = await guarded_call(Request(scope, receive))
                await response(scope, receive, send)
                return
        await router(scope, receive, send)

    return app


def _answer(kind: bytes, got: list, ser: str, authenticated: bool) -> Response:
    if kind == P.RESULT:
        return Response(b"".join(got), media_type=wire.SERIALIZATIONS[ser])
    payload, pickled = calls.error_from_parts(got, authenticated)
    return JSONResponse(calls.error_body(payload, pickled),
                        status_code=calls.ERROR_STATUS.get(payload.get("kind"), 500))
