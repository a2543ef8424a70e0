"""Start the server: ``python -m rh_server --host 127.0.0.1 --port 32300``.

The owner token comes on standard input with ``--token-stdin`` (one line): neither the command
line (which every local user can read in /proc) nor the environment (which stays readable in
/proc/PID/environ after the process removes it) ever holds it. ``$RH_SERVER_TOKEN`` is still
read when set, and removed from the environment before any plugin hook or worker runs.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Callable

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from rh_core import __version__
from rh_core.paths import rh_home, write_private
from rh_core.plugin.interfaces import ServerContext
from rh_core.plugin.registry import get_plugin_manager
from rh_core.transport import shm
from rh_server import idle
from rh_server.app import RESTART_EXIT, build_app
from rh_server.web import Limits

log = logging.getLogger("rh_server")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="rh_server", description="the rh server of a cluster node")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=32300, help="port to bind; 0 picks a free one")
    p.add_argument("--name", default="local", help="cluster name (for messages and state)")
    p.add_argument("--home", default=None, help="rh home on this node (default: $RH_HOME or ~/.rh)")
    p.add_argument("--record", default=None, help="write {pid, host, port} here once listening")
    p.add_argument("--log-file", default=None, help="the server's own log file")
    p.add_argument("--den-auth", action="store_true", help="require a token on every route")
    p.add_argument("--token-stdin", action="store_true",
                   help="read the owner token from the first line of standard input")
    p.add_argument("--setting", action="append", default=[], metavar="KEY=JSON",
                   help="a setting for plugins' server hooks (repeatable), e.g. caddy={...}")
    p.add_argument("--certfile", default=None, help="serve HTTPS with this certificate")
    p.add_argument("--keyfile", default=None, help="the certificate's private key")
    p.add_argument("--shm-dir", default=None,
                   help="private shared-memory folder for large buffers of same-machine clients")
    default = Limits()
    p.add_argument("--max-body-mb", type=int, default=_env_int("RH_MAX_BODY_MB", default.max_body_mb),
                   help="largest request body from a caller with an accepted token, in MiB "
                        f"(default $RH_MAX_BODY_MB or {default.max_body_mb}); larger ones get 413")
    p.add_argument("--auth-failures-per-minute", type=int,
                   default=_env_int("RH_AUTH_FAILURES_PER_MINUTE", default.auth_failures_per_minute),
                   help="requests with invalid tokens one address may send in a minute before "
                        "it gets 429 (default $RH_AUTH_FAILURES_PER_MINUTE or "
                        f"{default.auth_failures_per_minute})")
    p.add_argument("--autostop-mins", type=float, default=None, metavar="MINUTES",
                   help="stop the server (exit code 0) after this many minutes without a call "
                        "running or a request but /health; -1 or 0: never (the default)")
    p.add_argument("--loop", choices=("auto", "uvloop", "asyncio"),
                   default=os.environ.get("RH_SERVER_LOOP") or "auto",
                   help="the event loop: uvloop (installed with the server extra on Linux and "
                        "macOS; about 0.1 ms less per call), asyncio (the standard library's), or "
                        "auto: uvloop when it is installed (default $RH_SERVER_LOOP or auto)")
    p.add_argument("--no-access-log", action="store_true",
                   help="keep no access log (by default one JSON line per request goes to "
                        "$RH_HOME/server/<name>/access.log)")
    args = p.parse_args(argv)
    if args.max_body_mb < 1 or args.auth_failures_per_minute < 1:
        p.error("--max-body-mb and --auth-failures-per-minute must be at least 1")
    return args


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        sys.exit(f"rh server: ${name} must be a whole number, got {value!r}")


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.home:
        os.environ["RH_HOME"] = args.home
    home = rh_home()
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        filename=args.log_file,
    )
    token = os.environ.pop("RH_SERVER_TOKEN", None) or None
    if args.token_stdin:
        token = sys.stdin.readline().strip() or None
    if not _loopback(args.host) and not args.den_auth:
        sys.exit(f"rh server: refusing to listen on {args.host} without --den-auth: every "
                 f"machine that reaches it could call its functions")
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        sys.exit(f"rh server: cannot bind {args.host}:{args.port}: {e}")
    sock.listen(1024)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    ctx = ServerContext(host=args.host, port=port, rh_home=home, cluster_name=args.name,
                        den_auth=args.den_auth,
                        settings={"log_file": args.log_file, "shm_dir": args.shm_dir,
                                  "certfile": args.certfile, "keyfile": args.keyfile})
    for item in args.setting:
        key, _, value = item.partition("=")
        try:
            ctx.settings[key] = json.loads(value)
        except ValueError:
            sys.exit(f"rh server: --setting {key} is not valid JSON")
    mins = args.autostop_mins if args.autostop_mins is not None else ctx.settings.get(
        "autostop_mins")
    if isinstance(mins, bool) or not isinstance(mins, (int, float, type(None))):
        sys.exit("rh server: autostop_mins must be a number of minutes")
    ctx.settings["autostop_mins"] = mins if mins is not None and mins > 0 else None
    proxy = ctx.settings.get("caddy")
    if isinstance(proxy, dict) and not _loopback(str(proxy.get("host") or "127.0.0.1")) \
            and not args.den_auth:
        sys.exit("rh server: refusing a proxy on a non-loopback address without --den-auth")
    if args.shm_dir:
        shm.clear(args.shm_dir)
        os.environ["RH_SHM_DIR"] = args.shm_dir
    limits = Limits(max_body_mb=args.max_body_mb,
                    anonymous_body_mb=min(args.max_body_mb, Limits().anonymous_body_mb),
                    auth_failures_per_minute=args.auth_failures_per_minute)
    loop_name, run = event_loop(args.loop)
    code = run(serve(ctx, sock, token, args.record, limits, not args.no_access_log, loop_name))
    if code:
        sys.exit(code)


def event_loop(choice: str) -> tuple[str, Callable]:
    """``(name, run)`` of the event loop the server runs on: uvloop (what Hypercorn's own
    ``uvloop`` worker uses) unless ``choice`` is ``asyncio`` or uvloop is not installed; asking
    for ``uvloop`` without it is an error that says how to install it."""
    if choice != "asyncio":
        try:
            import uvloop  # optional (the server extra on Linux and macOS): a faster loop
        except ImportError:
            if choice == "uvloop":
                sys.exit("rh server: --loop uvloop: uvloop is not installed here; pip install "
                         "uvloop (or rh-core[server]), or use --loop asyncio")
        else:
            return "uvloop", uvloop.run
    return "asyncio", asyncio.run


async def serve(ctx: ServerContext, sock: socket.socket, token: str | None, record: str | None,
                limits: Limits, access_log: bool, loop_name: str = "asyncio"):
    pm = get_plugin_manager()
    pm.hook.rh_server_startup(server=ctx)
    app = build_app(ctx, token, pm, limits, access_log)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.accesslog = None
    config.errorlog = log
    config.keep_alive_timeout = 75
    config.graceful_timeout = 3
    if ctx.settings.get("certfile"):
        config.certfile = ctx.settings["certfile"]
        config.keyfile = ctx.settings["keyfile"]
    stop = app.life.stop
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app.dispatch.spawn(app.served.restore())
    app.dispatch.spawn(app.access.flush_every())
    if ctx.settings.get("autostop_mins"):
        app.dispatch.spawn(idle.autostop(
            app.idle, ctx.settings["autostop_mins"], stop,
            lambda seconds: pm.hook.rh_server_idle(server=ctx, idle_seconds=seconds)))
    if record:
        write_private(Path(record), json.dumps({
            "pid": os.getpid(), "host": ctx.host, "port": ctx.port, "version": __version__,
            "started": time.time(), "python": sys.executable, "log_file": ctx.settings["log_file"],
            "shm_dir": ctx.settings.get("shm_dir"), "certfile": ctx.settings.get("certfile"),
            # Where clients reach the server, when a plugin fronts it (e.g. Caddy).
            "public": ctx.settings.get("public"), "den_auth": ctx.den_auth,
            "loop": loop_name,
        }))
    log.info("rh server %s for cluster %s listening on %s:%s (pid %s, %s loop)", __version__,
             ctx.cluster_name, ctx.host, ctx.port, os.getpid(), loop_name)
    serving = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait))
    lingering = False
    try:
        await asyncio.wait([serving, asyncio.create_task(stop.wait())],
                           return_when=asyncio.FIRST_COMPLETED)
        lingering = not await _ended(serving, config.graceful_timeout + 0.5)
    finally:
        await app.shutdown()
        if ctx.settings.get("shm_dir"):
            shm.clear(ctx.settings["shm_dir"], remove=True)
        try:
            pm.hook.rh_server_shutdown(server=ctx)
        except Exception:  # noqa: BLE001 - documented: logged and ignored
            log.exception("a plugin's rh_server_shutdown failed")
        if record:
            try:
                if json.loads(Path(record).read_text()).get("pid") == os.getpid():
                    Path(record).unlink()
            except (OSError, ValueError):
                pass
        log.info("rh server stopped")
    code = RESTART_EXIT if app.life.restart else 0
    if lingering:
        # A TLS peer that keeps an idle connection and never answers close_notify holds
        # Hypercorn's shutdown for asyncio's 30 s SSL shutdown timeout; everything of ours is
        # stopped and written, so end the process now instead of waiting for it.
        logging.shutdown()
        os._exit(code)
    if serving.done() and not serving.cancelled() and serving.exception():
        raise serving.exception()
    return code


async def _ended(task: asyncio.Task, seconds: float) -> bool:
    """Whether ``task`` ends within ``seconds`` (it keeps running otherwise)."""
    try:
        await asyncio.wait_for(asyncio.shield(task), seconds)
        return True
    except asyncio.TimeoutError:
        log.warning("connections still open %.0f s after the stop signal (a TLS peer that does "
                    "not close); stopping without them", seconds)
        return False
    except Exception:  # noqa: BLE001 - raised again by serve() once everything is stopped
        return True
