"""The call path's own HTTP/1.1 codec (rh_core/transport/lean.py) against answers the rh server
does not give but an HTTP peer may (chunked, close-delimited, informational, malformed): a
loopback socket server in a thread answers each request with the bytes a test scripts. The rh
server's own answers are covered by every call test."""

from __future__ import annotations

import socket
import threading

import pytest

from rh_core.transport.lean import Dropped, LeanPool, Refused


class Scripted:
    """Accepts connections; for each request read, sends the next scripted answer (bytes), or
    closes the connection for ``None``. Records each request's raw bytes."""

    def __init__(self, answers: list[bytes | None]):
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self.answers:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        piece = conn.recv(65536)
                        if not piece:
                            break
                        data += piece
                    if not data:
                        break
                    head, _, body = data.partition(b"\r\n\r\n")
                    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), 0)
                    while len(body) < length:
                        body += conn.recv(65536)
                    self.requests.append(head + b"\r\n\r\n" + body)
                    answer = self.answers.pop(0)
                    if answer is None:
                        break
                    conn.sendall(answer)
                    if self.answers and self.answers[0] is None:  # close right after it
                        self.answers.pop(0)
                        break

    def close(self):
        self.sock.close()


@pytest.fixture
def scripted():
    servers = []

    def make(*answers):
        s = Scripted(list(answers))
        servers.append(s)
        return s, LeanPool(f"http://127.0.0.1:{s.port}", True, {"Authorization": "Bearer t"})

    yield make
    for s in servers:
        s.close()


def test_request_is_one_well_formed_message_with_the_pools_headers(scripted):
    srv, pool = scripted(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
    answer = pool.request("PUT", "/a/b?x=1", b"body", headers={"X-Extra": "1"})
    assert (answer.status, answer.content_type, answer.body) == (200, "text/plain", b"ok")
    raw = srv.requests[0]
    assert raw.startswith(b"PUT /a/b?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nAuthorization: Bearer t\r\n" in raw and b"\r\nX-Extra: 1\r\n" in raw
    assert raw.endswith(b"Content-Length: 4\r\n\r\nbody")


def test_keep_alive_connection_is_reused(scripted):
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d"
    srv, pool = scripted(ok % 1, ok % 2, ok % 3)
    assert [pool.post("/f/call", b"x", 1, 1 << 20).body for _ in range(3)] == [b"1", b"2", b"3"]
    assert srv.connections == 1


def test_chunked_answer_with_trailers(scripted):
    srv, pool = scripted(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
                         b"HTTP/1.1 204 No Content\r\n\r\n")
    assert pool.request("GET", "/x").body == b"hello world"
    assert pool.request("GET", "/y").status == 204  # the connection was left at a boundary
    assert srv.connections == 1


def test_informational_answer_is_skipped_and_close_delimited_body_read(scripted):
    srv, pool = scripted(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nuntil the end")
    answer = pool.request("GET", "/x")  # the server closes after its last scripted answer
    assert (answer.status, answer.body) == (200, b"until the end")


def test_large_answer_lands_in_a_writable_buffer(scripted):
    payload = bytes(range(256)) * 4096  # 1 MiB
    srv, pool = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
    body = pool.post("/f/call", b"x", 1, big=1024).body
    assert isinstance(body, bytearray) and body == payload


@pytest.mark.parametrize("answer, says", [
    (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "malformed header"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed the connection"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size"),
    (None, "closed the connection before it answered"),
])
def test_broken_answers_are_dropped_with_what_was_wrong(scripted, answer, says):
    srv, pool = scripted(answer)
    if answer is not None:
        srv.answers.append(None)  # then close
    with pytest.raises(Dropped, match=says):
        pool.post("/f/call", b"x", 1, 1 << 20)


def test_header_and_target_injection_are_refused(scripted):
    srv, pool = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ValueError, match="line break"):
        pool.request("GET", "/x", headers={"X-Bad": "a\r\nInjected: 1"})
    with pytest.raises(ValueError, match="spaces or line breaks"):
        pool.request("GET", "/x HTTP/1.1\r\nInjected: 1")
    assert srv.requests == []


def test_nothing_listening_is_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(Refused):
        LeanPool(f"http://127.0.0.1:{port}", True, {}).post("/f/call", b"x", 1, 1 << 20)


# ------------------------------------------------------------------ a connection's own socket


def test_calls_go_through_the_connections_own_socket_when_it_has_one(local):
    """``ConnectionInfo.open_socket``: plain and awaited calls reach the real local server
    through the sockets it opens (here: TCP to the server, while the URL names a port nobody
    listens on), one per kept-alive connection; what it raises is reported, nothing sent."""
    import asyncio

    import userfns

    import rh_core as rh
    from rh_core import errors
    from rh_core.plugin import ConnectionInfo
    from rh_core.transport.client import Client

    add = rh.function(userfns.add).to(local)
    server = local.client()
    host, port = server.lean.host, server.lean.port
    token = server.http.headers["authorization"].split()[1]
    dead = socket.create_server(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nobody listens there now
    opened = []

    def open_socket():
        opened.append(1)
        return socket.create_connection((host, port))

    client = Client(ConnectionInfo(f"http://127.0.0.1:{dead_port}", verify=False,
                                   open_socket=open_socket), token, "local")
    try:
        assert [client.call(add.name, "call", (i, 1)) for i in range(3)] == [1, 2, 3]
        assert len(opened) == 1  # kept alive

        async def awaited():
            return await client.call_awaitable(add.name, "call", (40, 2))

        assert asyncio.run(awaited()) == 42
        assert len(opened) == 2  # the event loop's own connection
    finally:
        client.close()

    def refuse():
        raise ConnectionError("the stream could not be opened: pod k-0 is not ready")

    broken = Client(ConnectionInfo(f"http://127.0.0.1:{port}", verify=False, open_socket=refuse),
                    token, "local")
    try:
        with pytest.raises(errors.ConnectionFailedError, match="pod k-0 is not ready"):
            broken.call(add.name, "call", (1, 1))
    finally:
        broken.close()
