"""``rh den serve``: the store's Starlette app, served by Hypercorn.

The app is the JSON API (:mod:`rh_den.api`), its OpenAPI document, ``/health`` and the page
(:mod:`rh_den.page`). Serving binds the socket first (so ``--port 0`` works and a port in use is
a clear error), holds the SQLite file's serve lock, and stops on SIGTERM or Ctrl-C after the
requests in flight are answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import socket
from pathlib import Path

import sqlalchemy as sa
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rh_den import __version__, api, openapi
from rh_den.den import Den, ServeLock, db_problem
from rh_den.errors import DenError
from rh_den.page import Page

log = logging.getLogger("rh_den")


def build_app(den: Den):
    document = openapi.document(__version__)

    async def health(request: Request):
        return JSONResponse({"ok": True, "store": "rh-den", "version": __version__})

    async def openapi_json(request: Request):
        return JSONResponse(document)

    async def not_found(request: Request, exc):
        return JSONResponse({"error": {"kind": "not_found", "message": (
            f"no route {request.method} {request.url.path}; see /openapi.json")}},
            status_code=getattr(exc, "status_code", 404))

    async def failed(request: Request, exc: Exception):
        if isinstance(exc, DenError):
            return JSONResponse(exc.payload(), status_code=exc.status)
        if isinstance(exc, sa.exc.DBAPIError):  # e.g. the database went away
            return JSONResponse({"error": {"kind": "db_unavailable",
                                           "message": db_problem(den.db_url, exc)}}, status_code=503)
        log.exception("request %s %s failed", request.method, request.url.path)
        return JSONResponse({"error": {"kind": "internal", "message": "the store failed on this "
                             "request; its log has the details"}}, status_code=500)

    routes = [Route("/health", health), Route("/openapi.json", openapi_json),
              *api.routes(den), *Page(den).routes()]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found,
                                                       Exception: failed})
    return api.QuickLoads(app, den) if den.sqlite else app


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise DenError(400, "bind", f"cannot listen on {host}:{port}: {e.strerror}; pick another "
                                    f"--port") from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def serve(db_url: str, host: str = "127.0.0.1", port: int = 8410, record: str | None = None,
          certfile: str | None = None, keyfile: str | None = None,
          secret_key_file: str | None = None) -> None:
    """Serve the store of ``db_url`` until SIGTERM or Ctrl-C."""
    if not _loopback(host) and not certfile:
        log.warning("serving on %s without TLS: tokens cross the network in clear text; put a "
                    "TLS proxy in front or give --certfile/--keyfile", host)
    den = Den(db_url, secret_key_file, make_key=True)
    lock = ServeLock(den.sqlite) if den.sqlite else contextlib.nullcontext()
    try:
        with lock:
            sock = bind(host, port)
            bound = sock.getsockname()[1]
            scheme = "https" if certfile else "http"
            url = f"{scheme}://{host if ':' not in host else f'[{host}]'}:{bound}"
            if record:
                Path(record).write_text(json.dumps({"url": url, "pid": os.getpid()}))
            print(f"rh den {__version__} serving {den.where} at {url}", flush=True)
            asyncio.run(_serve(build_app(den), sock, certfile, keyfile))
    finally:
        den.close()


async def _serve(app, sock: socket.socket, certfile: str | None, keyfile: str | None) -> None:
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = log
    config.keep_alive_timeout = 75
    config.graceful_timeout = 3
    if certfile:
        config.certfile, config.keyfile = certfile, keyfile
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)
