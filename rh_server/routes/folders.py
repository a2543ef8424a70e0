"""``/folder/...``: files on the server's node, for folders, blobs and tables kept there.

``GET /folder/tar`` sends a folder (or a file) as a tar stream with its checksum, ``PUT
/folder/tar`` receives one into a folder (streamed to a staging folder on disk under the caller's
body limit, checked, then moved into place), and ``POST /folder/{op}`` resolves, lists, makes,
moves, copies and removes paths. Reading or writing any file of the server's user is as much as
running code as that user, so every route needs write access on ``*``, like ``/commands``.
Needs the auth part, the server's context (its rh home) and the limits.
"""

from __future__ import annotations

import asyncio
import json
import queue
from pathlib import Path

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, StreamingResponse

from rh_core import errors
from rh_core.plugin import AccessLevel, ServerContext
from rh_core.transport import archive
from rh_server import files
from rh_server.auth import Auth
from rh_server.web import HTTPProblem, JSONRoute, Limits, bad_request, flag, guarded, read_body

OPS = ("resolve", "ls", "mkdir", "mv", "copy", "rm")
#: Chunks (of about 1 MiB) received ahead of the thread writing them.
DEPTH = 8
#: Bytes read (and dropped) past a refused upload before answering, for a client that only
#: reads the answer once it has sent its body.
DRAIN = 64 << 20

#: The HTTP answer to each of rh's data errors: (status, kind).
ANSWERS = [
    (errors.DataNotFoundError, 404, "path_not_found"),
    (errors.DataExistsError, 409, "exists"),
    (errors.UnsafePathError, 400, "unsafe_path"),
    (errors.DiskFullError, 507, "disk_full"),
    (errors.TransferError, 400, "transfer"),
]


def problem(e: Exception) -> HTTPProblem:
    """The answer to an error met on the node's filesystem."""
    for cls, status, kind in ANSWERS:
        if isinstance(e, cls):
            return HTTPProblem(status, kind, str(e))
    if isinstance(e, OSError):
        where = f" ({e.filename})" if e.filename else ""
        return HTTPProblem(400, "bad_request", f"{e.strerror or e}{where}")
    raise e


async def _blocking(fn, *args):
    try:
        return await asyncio.to_thread(fn, *args)
    except (OSError, errors.RhError) as e:
        raise problem(e) from None


def too_large(limit_mb: int) -> HTTPProblem:
    return HTTPProblem(413, "too_large", f"the archive is over this server's limit of {limit_mb} "
                       f"MiB for this caller; nothing was written. Copy less at a time, or start "
                       f"the server with a higher --max-body-mb (the cluster's max_body_mb)")


class _Feed:
    """Chunks handed from the event loop to the thread that extracts them, at most ``DEPTH``
    ahead (the body streams to disk; it is never held whole in memory)."""

    def __init__(self):
        self.items: queue.SimpleQueue = queue.SimpleQueue()
        self.room = asyncio.Semaphore(DEPTH)
        self.loop = asyncio.get_running_loop()

    def chunks(self):
        """The thread's side: the chunks, in order."""
        while True:
            item = self.items.get()
            self.loop.call_soon_threadsafe(self.room.release)
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    async def put(self, item, reader: asyncio.Future) -> bool:
        """Hand ``item`` over; False when the reader has stopped (it failed)."""
        acquire = asyncio.ensure_future(self.room.acquire())
        done, _ = await asyncio.wait([acquire, reader], return_when=asyncio.FIRST_COMPLETED)
        if acquire not in done:
            acquire.cancel()
            return False
        self.items.put(item)
        return True


def routes(auth: Auth, ctx: ServerContext, limits: Limits) -> list[JSONRoute]:
    def path_param(request: Request) -> Path:
        try:
            return files.node_path(request.query_params.get("path"))
        except errors.UnsafePathError as e:
            raise bad_request(f"{e}: give ?path=PATH") from None

    async def get_tar(request: Request):
        """The folder or file ``path`` as a tar stream followed by its SHA-256."""
        auth.check(request, "*", AccessLevel.WRITE)
        path = path_param(request)
        base, entries = await _blocking(lambda: archive.walk(files.existing(path)))
        return StreamingResponse(archive.pack(base, entries), media_type=archive.CONTENT_TYPE,
                                 headers={"X-Rh-Bytes": str(sum(e[2] for e in entries))})

    async def put_tar(request: Request):
        """A tar stream (and its SHA-256) extracted into the folder ``path``."""
        auth.check(request, "*", AccessLevel.WRITE)
        dest = path_param(request)
        overwrite = flag(request, "overwrite")
        limit = limits.max_body_mb << 20
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > limit:
            if int(size) <= limit + DRAIN:  # read and drop it, so the client reads the answer
                async for _ in request.stream():
                    pass
            raise too_large(limits.max_body_mb)
        feed = _Feed()
        reader = asyncio.ensure_future(asyncio.to_thread(archive.unpack, feed.chunks(), dest,
                                                         overwrite))
        total, buf, taking, over = 0, bytearray(), True, False
        try:
            async for chunk in request.stream():
                total += len(chunk)
                if total > limit and not over:
                    over, taking = True, False
                    feed.items.put(errors.TransferError("the upload is over the limit"))
                if total > limit + DRAIN:
                    break
                if not taking:
                    # The reader stopped (a bad archive, or over the limit): read on a little,
                    # so that the client, still sending, gets to read the answer.
                    continue
                buf += chunk
                if len(buf) >= archive.CHUNK:
                    taking = await feed.put(bytes(buf), reader)
                    buf = bytearray()
            if over:
                raise too_large(limits.max_body_mb)
            if taking and (not buf or await feed.put(bytes(buf), reader)):
                await feed.put(None, reader)
        except (HTTPProblem, ClientDisconnect, asyncio.CancelledError) as e:
            feed.items.put(errors.TransferError(f"the upload stopped: {e}"))
            await asyncio.wait([reader])
            raise
        except Exception:
            feed.items.put(errors.TransferError("the upload stopped"))
            await asyncio.wait([reader])
            raise
        try:
            n_files, n_bytes = await reader
        except (OSError, errors.RhError) as e:
            raise problem(e) from None
        return JSONResponse({"path": str(dest), "files": n_files, "bytes": n_bytes})

    async def operation(request: Request):
        """One operation on the node's files (see docs/server.md)."""
        auth.check(request, "*", AccessLevel.WRITE)
        op = request.path_params["op"]
        if op not in OPS:
            raise HTTPProblem(404, "not_found", f"no folder operation {op!r:.40}; there are "
                              f"{', '.join(OPS)}")
        try:
            spec = json.loads(await read_body(request, 1))
            if not isinstance(spec, dict):
                raise TypeError("the body must be a JSON object")
            return JSONResponse(await _blocking(_run, op, spec, ctx.rh_home))
        except (ValueError, TypeError, KeyError, RecursionError) as e:
            raise bad_request(f"bad body for /folder/{op} ({e}); see docs/server.md") from None

    return [
        JSONRoute("/folder/tar", guarded(get_tar), methods=["GET"]),
        JSONRoute("/folder/tar", guarded(put_tar), methods=["PUT"]),
        JSONRoute("/folder/{op}", guarded(operation), methods=["POST"]),
    ]


def _run(op: str, spec: dict, rh_home: Path) -> dict:
    """The answer to ``op`` with the body ``spec``."""
    raw = spec.get("path")
    if op == "resolve" and raw is None:  # the default place for data named ``name``
        raw = str(rh_home / "data" / archive.check_name(str(spec["name"])))
    path = files.node_path(raw)
    if op == "resolve":
        return files.resolve(path, bool(spec.get("walk")))
    if op == "ls":
        return {"path": str(path), "entries": files.ls(path)}
    if op == "mkdir":
        files.mkdir(path)
        return {"path": str(path)}
    if op in ("mv", "copy"):
        dest = files.node_path(spec["dest"])
        overwrite = bool(spec.get("overwrite"))
        if op == "mv":
            files.move(path, dest, overwrite)
            return {"path": str(dest)}
        n_files, n_bytes = files.copy(path, dest, overwrite)
        return {"path": str(dest), "files": n_files, "bytes": n_bytes}
    names = spec.get("names")
    if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
        raise TypeError("'names' must be a list of names inside the folder")
    return {"removed": files.rm(path, names, rh_home)}
