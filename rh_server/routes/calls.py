"""``GET|POST /{name}/{method}``: calling a served function or a method of a served instance.

This is the hot path: the app sends every two-part path straight here, without route matching.
A call is authorized (pickle needs write access, since unpickling runs code), its arguments read
(a pickle body as bytes, a JSON body or query parameters as JSON), and it is handed to the
dispatcher in the mode its flags ask for: plain, streamed, async (a run kept on the cluster),
enqueued, or a map.
"""

from __future__ import annotations

import functools
import json

import attrs
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from rh_core.plugin import AccessLevel
from rh_core.transport import wire
from rh_server import protocol as P
from rh_server.auth import OWNER, WORKER, Auth
from rh_server.dispatch import Dispatcher
from rh_server.runs import RUN_KEY, Run, new_run_key
from rh_server.served import Served
from rh_server.web import (
    HTTPProblem,
    JSONRoute,
    Limits,
    answer,
    bad_request,
    flag,
    guarded,
    parsed_query,
    read_body,
)

#: Methods every served instance answers that need write access (see rh_server.worker).
WRITE_METHODS = frozenset({"rh.setattr"})


def call_handler(auth: Auth, served: Served, dispatch: Dispatcher, limits: Limits):
    """The guarded endpoint of every call (also what the app's fast path runs)."""

    async def call(request: Request):
        name, method = request.path_params["name"], request.path_params["method"]
        if request.method == "HEAD":  # Starlette routes HEAD to GET handlers; a call is not safe
            raise HTTPProblem(405, "bad_request", "call with GET or POST",
                              headers={"Allow": "GET, POST"})
        # Setting an attribute by name changes any state of the object: write access.
        caller = auth.check(request, name, AccessLevel.WRITE if method in WRITE_METHODS
                            else AccessLevel.READ)
        if not served.restored.is_set():
            await served.restored.wait()
        res = served.lookup(name)
        if request.method == "GET":
            ser, body = "json", json.dumps({"args": [], "kwargs": _query_kwargs(request)}).encode()
        else:
            ctype = request.headers.get("content-type", wire.JSON_CT).split(";")[0].strip()
            pickled = ctype == wire.PICKLE_CT
            if pickled and caller is not OWNER and caller is not WORKER and \
                    not auth.may(request, name, AccessLevel.WRITE):
                raise HTTPProblem(
                    401 if request.headers.get("authorization") is None else 403, "auth",
                    "pickled arguments are accepted only from an authenticated caller with "
                    "write access (unpickling runs code); send JSON instead")
            raw = await read_body(request, limits.max_body_mb if caller.authenticated
                                  else limits.anonymous_body_mb)
            if pickled:
                ser, body = "pickle", raw
            elif ctype in (wire.JSON_CT, "text/plain", ""):
                ser, body = "json", _json_args(raw)
            else:
                raise bad_request(f"unknown serialization {ctype!r}; use {wire.JSON_CT} or "
                                  f"{wire.PICKLE_CT}")
        return await _dispatch(request, dispatch, served, res, name, method, ser, body)

    return guarded(call)


@attrs.frozen
class CallQuery:
    """What a call's query string asks for (the modes and their settings), read once per
    distinct string: a client sends the same few with every call."""

    refs: tuple[str, ...]
    #: The answer's serialization when the caller asked for one (Runhouse's ``serialization``).
    answer_ser: str | None
    enqueue: bool
    shm: bool
    run_async: bool
    mapped: bool
    stream: bool
    #: ``rh_run_key`` as given (checked per call: whether it is in use changes).
    run_key: str | None
    offsets: tuple[int, ...]


@functools.lru_cache(maxsize=256)
def call_query(raw: bytes) -> CallQuery:
    """The :class:`CallQuery` of a raw query string; a bad one raises its 400."""
    q = parsed_query(raw)
    answer_ser = q.get("serialization")
    if answer_ser is not None and answer_ser not in ("json", "pickle"):
        raise bad_request(f"serialization must be json or pickle, got {answer_ser!r:.40}")
    offsets: tuple[int, ...] = ()
    if flag(q, "rh_map"):
        try:
            offsets = tuple(int(o) for o in json.loads(q.get("rh_offsets", "[]")))
        except (ValueError, TypeError):
            raise bad_request("rh_offsets must be a JSON list of ints") from None
    return CallQuery(
        refs=tuple(r for r in q.get("rh_refs", "").split(",") if r), answer_ser=answer_ser,
        enqueue=flag(q, "rh_enqueue"), shm=flag(q, "rh_shm"), run_async=flag(q, "rh_async"),
        mapped=flag(q, "rh_map"), stream=flag(q, "rh_stream"), run_key=q.get("rh_run_key"),
        offsets=offsets)


async def _dispatch(request, dispatch: Dispatcher, served: Served, res, name, method, ser, body):
    q = call_query(request.scope.get("query_string", b""))
    header = {"name": name, "method": method, "ser": ser}
    if q.refs:
        header["refs"] = list(q.refs)
    pickled = ser == "pickle"
    answer_ser = q.answer_ser or ser
    if answer_ser != ser:
        header["out"] = answer_ser
    enqueue = q.enqueue
    if q.shm and pickled and not q.run_async:
        shm_dir = served.ctx.settings.get("shm_dir")
        if shm_dir:
            header["shm"] = shm_dir  # the caller shares this machine: large results go there
    key = _run_key(q, dispatch, name) if q.run_key is not None or q.run_async else None

    if q.mapped:
        if not pickled:
            raise bad_request("map takes a pickled body")
        header["offsets"] = list(q.offsets)
        active = dispatch.active.begin(name, method, "map", key)
        if q.stream:  # the items' output while they run, then the results
            header["logs"] = True
            return StreamingResponse(dispatch.stream_frames(res, header, body, pickled, False,
                                                            active, mapped=True),
                                     media_type=wire.STREAM_CT)
        return await _plain(request, dispatch, active, ser,
                            lambda: dispatch.run_map(res, header, body, active), pickled)

    if q.run_async:
        run = dispatch.runs.add(Run(key, name, method, answer_ser))
        active = dispatch.active.begin(name, method, "run", key)
        header["logs"] = True
        active.task = dispatch.spawn(
            dispatch.run_to_store(run, res, header, body, enqueue, pickled, active))
        return JSONResponse({"run_key": key}, status_code=202)

    if q.stream:
        header["logs"] = header["stream"] = True
        media = wire.NDJSON_CT if answer_ser == "json" else wire.STREAM_CT
        active = dispatch.active.begin(name, method, "stream", key)
        return StreamingResponse(
            dispatch.stream_frames(res, header, body, pickled, enqueue, active), media_type=media)

    active = dispatch.active.begin(name, method, "call", key)
    if enqueue:
        return await _plain(request, dispatch, active, answer_ser, lambda: dispatch.in_order(
            name, lambda: dispatch.collect(res, header, body, active)), pickled)
    return await _plain(request, dispatch, active, answer_ser,
                        lambda: dispatch.collect(res, header, body, active), pickled)


async def _plain(request, dispatch: Dispatcher, active, ser: str, work, pickled: bool):
    """Run a call that answers once, cancelling it if its caller goes away meanwhile."""
    watching = dispatch.active.watch(active, request.receive)
    status = "error"
    try:
        kind, got = await work()
        status = "done" if kind == P.RESULT else "error"
        return answer(kind, got, ser, pickled)
    finally:
        dispatch.active.stop_watching(active, watching)
        dispatch.active.end(active, status)


def _run_key(q: CallQuery, dispatch: Dispatcher, name: str) -> str:
    """The caller's run key (checked, and not in use), or a new one."""
    if q.run_key is None:
        return new_run_key(name)
    key = q.run_key
    if not RUN_KEY.match(key):
        raise bad_request(f"bad run key {key!r:.80}: use 1-200 letters, digits and _.@:-")
    if dispatch.runs.get(key) is not None or dispatch.active.taken(key):
        raise bad_request(f"run key {key!r:.80} is in use on this cluster: pick another, or "
                          f"delete that run first")
    return key


def routes(call) -> list[JSONRoute]:
    return [JSONRoute("/{name}/{method}", call, methods=["GET", "POST"]),
            # Runhouse's form of the same route
            JSONRoute("/call/{name}/{method}", call, methods=["GET", "POST"])]


def _query_kwargs(request: Request) -> dict:
    kwargs = {}
    for key, value in request.query_params.multi_items():
        if key.startswith("rh_") or key == "serialization":  # rh's own parameters
            continue
        try:
            kwargs[key] = json.loads(value)
        except ValueError:
            kwargs[key] = value
    return kwargs


def _json_args(body: bytes) -> bytes:
    """A JSON body as ``{"args": [...], "kwargs": {...}}``: it may also be a list of args or an
    object of kwargs."""
    if not body.strip():
        return b""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise bad_request(f"the body is not valid JSON: {e}") from None
    if isinstance(data, list):
        data = {"args": data, "kwargs": {}}
    elif isinstance(data, dict) and set(data) <= {"args", "kwargs"} and data:
        if not isinstance(data.get("args", []), list) or not isinstance(data.get("kwargs", {}), dict):
            raise bad_request("'args' must be a list and 'kwargs' an object")
    elif isinstance(data, dict):
        data = {"args": [], "kwargs": data}
    else:
        raise bad_request("a JSON body is {'args': [...], 'kwargs': {...}}, a list of args or an "
                          "object of kwargs")
    return json.dumps(data).encode()
