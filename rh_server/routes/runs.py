"""``/runs...``: results kept on the cluster by ``.remote()``/``.enqueue()`` and their logs.

A run is authorized against the name of the function it ran: a token that may read ``concat``
may read the runs of ``concat``. Only the run store is needed here.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from rh_core.plugin import AccessLevel
from rh_core.transport import wire
from rh_server.auth import Auth
from rh_server.runs import Run, RunStore
from rh_server.web import HTTPProblem, JSONRoute, error_response, flag, guarded


def routes(auth: Auth, runs: RunStore) -> list[JSONRoute]:
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
        """The run's result, waiting for it unless ``rh_nowait`` is set (then 202 meanwhile)."""
        run = find(request, AccessLevel.READ)
        if not flag(request, "rh_nowait"):
            await run.done.wait()
        elif not run.done.is_set():
            return JSONResponse(run.summary(), status_code=202)
        if run.error is not None:
            return error_response(*run.error)
        return Response(run.result, media_type=wire.SERIALIZATIONS[run.ser])

    async def delete_run(request: Request):
        run = find(request, AccessLevel.WRITE)
        runs.delete(run.key)
        return JSONResponse({"deleted": run.key})

    async def list_runs(request: Request):
        auth.check(request, "*", AccessLevel.READ)
        return JSONResponse({"runs": [r.summary() for r in runs.runs.values()]})

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
    ]
