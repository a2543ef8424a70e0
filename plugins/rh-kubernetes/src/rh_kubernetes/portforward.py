"""A local port that reaches a port of a pod: each connection accepted on 127.0.0.1 gets its own
stream through the API server's port-forward websocket (``kubernetes.stream.portforward``), so
the HTTP client's keep-alive connections map one to one onto streams; and one HTTP exchange with
a pod's port over a stream of its own (how the client talks to the agent)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from typing import Callable

CHUNK = 1 << 20


class LocalForward:
    """Listens on 127.0.0.1 (a free port); ``open_stream()`` gives, for each accepted
    connection, ``(stream, socket)`` to the pod's port, or raises (then the connection is
    closed and the error kept in ``last_error``)."""

    def __init__(self, open_stream: Callable[[], tuple]):
        self.open_stream = open_stream
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.last_error: Exception | None = None
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name=f"rh port-forward :{self.port}",
                         daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return  # closed
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            stream, remote = self.open_stream()
        except Exception as e:  # noqa: BLE001 - kept for explain_drop; the client sees the close
            self.last_error = e
            conn.close()
            return
        with self._lock:
            if self._closed:
                conn.close()
                stream.close()
                return
            self._live.add(conn)
        threading.Thread(target=_pump, args=(remote, conn), daemon=True).start()
        _pump(conn, remote)
        with self._lock:
            self._live.discard(conn)

    def close(self) -> None:
        """Stop listening and end every forwarded connection."""
        with self._lock:
            self._closed = True
            live, self._live = list(self._live), set()
        try:
            self.listener.close()
        except OSError:
            pass
        for conn in live:
            _close(conn)


def _pump(src, dst) -> None:
    """Copy ``src`` to ``dst`` until ``src`` ends; then end both (a stream carries one
    connection: when either side is done, so is the other)."""
    try:
        while True:
            data = src.recv(CHUNK)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        _close(dst)
        _close(src)


def _close(sock) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Conn(http.client.HTTPConnection):
    """An HTTP connection over a socket that is already open (a port-forward stream's)."""

    def __init__(self, sock, timeout: float):
        super().__init__("127.0.0.1", timeout=timeout, blocksize=CHUNK)
        self._given = sock

    def connect(self) -> None:
        self.sock = self._given
        self.sock.settimeout(self.timeout)


def exchange(kube, pod: str, port: int, method: str, path: str, token: str,
             body=None, length: int | None = None, timeout: float = 600) -> tuple[int, dict]:
    """One HTTP request to ``port`` of ``pod`` through a stream of its own: ``(status, the
    answer's JSON)``. ``body`` is bytes or a file (``length`` bytes long)."""
    stream, sock = kube.portforward(pod, port)
    try:
        conn = _Conn(sock, timeout)
        headers = {"Authorization": f"Bearer {token}", "Connection": "close"}
        if body is not None:
            headers["Content-Length"] = str(length if length is not None else len(body))
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        error = stream.error(port)
    except (OSError, http.client.HTTPException) as e:
        error = stream.error(port)
        raise ConnectionError(f"{method} {path} on pod {pod} port {port} broke: "
                              f"{error or e}") from None
    finally:
        stream.close()
    try:
        return resp.status, json.loads(raw or b"{}")
    except ValueError:
        return resp.status, {"error": raw.decode(errors="replace")[:2000] or str(error)}
