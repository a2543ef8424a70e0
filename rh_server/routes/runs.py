"""``/runs...``: results kept on the cluster by ``.remote()``/``.enqueue()``, their logs, the
calls running now and the last that ended, and cancelling them.

A run is authorized against the name of the function it ran: a token that may read ``concat``
may read the runs of ``concat`` (and cancelling needs write). Only the run store and the
registry of running calls are needed here.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from rh_core.plugin import AccessLevel
from rh_core.transport import wire
from rh_server.active import ActiveCalls
from rh_server.auth import Auth
from rh_server.runs import Run, RunStore
from rh_server.web import HTTPProblem, JSONRoute, bad_request, error_response, flag, guarded


def routes(auth: Auth, runs: RunStore, active: ActiveCalls) -> list[JSONRoute]:
    def find(request: Request, access: AccessLevel) -> Run:
        """The run of the path, if the caller has ``access`` on the function it belongs to."""
        key = request.path_params["key"]
        run = runs.get(key)
        if run is None:
            auth.check(request, "*", access)  # no hint about which keys exist
            raise HTTPProblem(404, "run_not_found",
                              f"no run {key!r:.80} on this cluster: it was never made, was "
                              f"deleted, or the server restarted since")
        auth.check(request, run.name, access)
        return run

    async def get_run(request: Request):
        """The run's result, waiting for it (at most ``rh_timeout`` seconds; not at all with
        ``rh_nowait``): a run still going then answers 202 with its summary."""
        run = find(request, AccessLevel.READ)
        wait = 0.0 if flag(request, "rh_nowait") else _seconds(request)
        if not run.done.is_set() and wait != 0.0:
            try:
                await asyncio.wait_for(run.done.wait(), wait)
            except asyncio.TimeoutError:
                pass
        if not run.done.is_set():
            return JSONResponse(run.summary(), status_code=202)
        if run.error is not None:
            return error_response(*run.error)
        return Response(run.result, media_type=wire.SERIALIZATIONS[run.ser])

    async def delete_run(request: Request):
        run = find(request, AccessLevel.WRITE)
        runs.delete(run.key)
        return JSONResponse({"deleted": run.key})

    async def list_runs(request: Request):
        """Runs kept on the cluster, plain calls running now and the last that ended, oldest
        first."""
        auth.check(request, "*", AccessLevel.READ)
        listed = [r.summary() for r in runs.runs.values()] + active.listing()
        return JSONResponse({"runs": sorted(listed, key=lambda r: r["created"])})

    async def cancel(request: Request):
        """Stop a run or a call running now (write access on its function)."""
        key = request.path_params["key"]
        run, call = runs.get(key), active.calls.get(key)
        if run is None and call is None:
            auth.check(request, "*", AccessLevel.WRITE)
            raise HTTPProblem(404, "run_not_found", f"no run {key!r:.80} on this cluster: it was "
                              f"never made, was deleted, or the server restarted since")
        auth.check(request, (run or call).name, AccessLevel.WRITE)
        stopped = active.cancel(key, "cancelled by its caller")
        if run is not None and stopped:
            await run.done.wait()  # the worker answers at once, or is replaced within its grace
        status = run.status if run is not None else ("cancelled" if stopped else "done")
        return JSONResponse({"run_key": key, "cancelled": stopped, "status": status})

    async def run_logs(request: Request):
        """The run's output so far, then the rest as it is written, until the run ends."""
        run = find(request, AccessLevel.READ)

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

    return [
        JSONRoute("/runs", guarded(list_runs), methods=["GET"]),
        JSONRoute("/runs/{key}", guarded(get_run), methods=["GET"]),
        JSONRoute("/runs/{key}", guarded(delete_run), methods=["DELETE"]),
        JSONRoute("/runs/{key}/logs", guarded(run_logs), methods=["GET"]),
JSONRoute("/runs/{key}/cancel", guarded(cancel), methods=["POST"]),
    ]


def _seconds(request: Request) -> float | None:
    """``rh_timeout`` in seconds (None: wait as long as it takes)."""
    value = request.query_params.get("rh_timeout")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < 10**9:
        raise bad_request(f"rh_timeout must be a number of seconds, got {value!r:.40}")
    return seconds
