"""Baseline servers the benchmarks compare rh against.

Two servers, each started in its own process, bound to 127.0.0.1 (port 0 = a free one). Each
prints the port it bound on stdout (one line) and then serves until SIGTERM/SIGINT:

* ``http``: a bare Starlette app on Hypercorn (same server stack and settings as the rh server:
  its event loop, ``--loop uvloop`` or ``asyncio``, socket passed as ``fd://``, no access log)
  whose ``POST /echo`` answers the request body as it came.
* ``tcp``: a raw TCP echo server: it reads ``u64 length | payload`` (with ``recv_into``) and sends
  the same message back (``sendall``). One thread per connection.

Run it as a script or a module::

    python bench/baselines.py http 0
    python -m bench.baselines tcp 0          # from the repository root

``--parent-pid PID`` makes the server exit on its own if that process goes away (so a crashed
benchmark run never leaves one behind).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import struct
import sys
import threading
import time

LEN = struct.Struct("!Q")


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def announce(sock: socket.socket) -> None:
    sys.stdout.write(f"{sock.getsockname()[1]}\n")
    sys.stdout.flush()


def watch_parent(pid: int | None) -> None:
    """Exit when ``pid`` is gone (checked every half second, on a daemon thread)."""
    if not pid:
        return

    direct_child = os.getppid() == pid

    def loop():
        while True:
            time.sleep(0.5)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass
            if direct_child and os.getppid() != pid:  # reparented: the parent died
                os._exit(0)

    threading.Thread(target=loop, daemon=True, name="watch-parent").start()


# ----------------------------------------------------------------------------- HTTP echo


def echo_app():
    """The bare Starlette app: ``POST /echo`` answers the request body."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="application/octet-stream")

    return Starlette(routes=[Route("/echo", echo, methods=["POST"])])


def serve_http(host: str, port: int, loop: str = "asyncio") -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sock = bind(host, port)
    sock.set_inheritable(True)

    async def main() -> None:
        config = Config()
        config.bind = [f"fd://{sock.fileno()}"]
        config.accesslog = None
        config.keep_alive_timeout = 75
        config.graceful_timeout = 1
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        announce(sock)
        await serve(echo_app(), config, shutdown_trigger=stop.wait)

    if loop == "uvloop":
        import uvloop  # the loop the rh server runs on when it is installed

        uvloop.run(main())
    else:
        asyncio.run(main())


# ----------------------------------------------------------------------------- TCP echo


def _read_exact(conn: socket.socket, view: memoryview) -> bool:
    got, n = 0, view.nbytes
    while got < n:
        k = conn.recv_into(view[got:], n - got)
        if k == 0:
            return False
        got += k
    return True


def _echo_conn(conn: socket.socket) -> None:
    head = bytearray(LEN.size)
    buf = bytearray()
    try:
        while True:
            if not _read_exact(conn, memoryview(head)):
                return
            (n,) = LEN.unpack(head)
            if len(buf) != n:
                buf = bytearray(n)
            if not _read_exact(conn, memoryview(buf)):
                return
            conn.sendall(head)
            conn.sendall(buf)
    except OSError:
        pass
    finally:
        conn.close()


def serve_tcp(host: str, port: int) -> None:
    sock = bind(host, port)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    announce(sock)
    try:
        while True:
            conn, _ = sock.accept()
            threading.Thread(target=_echo_conn, args=(conn,), daemon=True).start()
    except KeyboardInterrupt:
        pass


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="baseline echo servers for bench/run.py")
    p.add_argument("kind", choices=["http", "tcp"], help="http: Starlette+Hypercorn; tcp: raw")
    p.add_argument("port", nargs="?", type=int, default=0, help="port to bind (0: a free one)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--parent-pid", type=int, default=None,
                   help="exit when this process is gone")
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio",
                   help="the http server's event loop (the rh server's, to compare like with like)")
    args = p.parse_args(argv)
    watch_parent(args.parent_pid)
    if args.kind == "http":
        serve_http(args.host, args.port, args.loop)
    else:
        serve_tcp(args.host, args.port)


if __name__ == "__main__":
    main()
