"""The call path's own HTTP transport: keep-alive ``http.client`` connections for POSTing a
call and reading its answer.

httpx costs about 0.2 ms a request on these machines, more than the rest of a trivial call's
client side; ``http.client`` does the same exchange in a fraction of it. Calls (plain calls,
maps, async runs) go through here; streams and the other routes keep httpx, where its features
matter. Connections are checked before reuse (a socket the server closed while idle reads as
ready), so a keep-alive connection the server dropped is never sent a call.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
from typing import Iterable
from urllib.parse import urlsplit

CONNECT_TIMEOUT = 15.0


class Dropped(ConnectionError):
    """The connection broke after the request was (perhaps) sent: the outcome is unknown."""


class Refused(ConnectionError):
    """No connection could be made: nothing was sent."""


class Answer:
    """A response, read whole: status, the headers rh reads, the body."""

    __slots__ = ("status", "content_type", "body")

    def __init__(self, status: int, content_type: str, body: bytes | bytearray):
        self.status, self.content_type, self.body = status, content_type, body


class LeanPool:
    """Idle keep-alive connections to one server, shared by the client's threads."""

    def __init__(self, base_url: str, verify: bool | ssl.SSLContext, headers: dict[str, str]):
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port or (443 if self.https else 80)
        self.context = None
        if self.https:
            self.context = verify if isinstance(verify, ssl.SSLContext) else \
                ssl.create_default_context()
        self.headers = dict(headers)
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    def _connect(self) -> http.client.HTTPConnection:
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=CONNECT_TIMEOUT,
                                               context=self.context)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=CONNECT_TIMEOUT)
        try:
            conn.connect()
        except OSError as e:
            conn.close()
            raise Refused(str(e)) from None
        conn.sock.settimeout(None)  # a call may run as long as it runs
        return conn

    def _take(self) -> http.client.HTTPConnection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                sock = conn.sock
                if sock is not None and not select.select([sock], [], [], 0)[0]:
                    return conn
                conn.close()  # readable while idle: the server closed it
        return self._connect()

    def _give_back(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < 32:
                self._idle.append(conn)
                return
        conn.close()

    def post(self, url: str, body: bytes | Iterable, length: int, big: int,
             timeout: float | None = None) -> Answer:
        """POST ``body`` (bytes, or pieces of ``length`` bytes in all) to ``url`` (a path with
        its query); the answer read whole, into a writable bytearray when it has ``big`` bytes
        or more."""
        return self.request("POST", url, body, length, big, timeout)

    def request(self, method: str, url: str, body: bytes | Iterable = b"",
                length: int | None = None, big: int = 1 << 62, timeout: float | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        """Any method, as :meth:`post` (the shared store's client sends GET, PUT, POST and
        DELETE with JSON through here); ``headers`` are added to the pool's own."""
        conn = self._take()
        if length is None:
            length = len(body)
        try:
            if timeout is not None:
                conn.sock.settimeout(timeout)
            conn.putrequest(method, url, skip_host=False, skip_accept_encoding=True)
            for key, value in {**self.headers, **(headers or {})}.items():
                conn.putheader(key, value)
            conn.putheader("Content-Length", str(length))
            try:
                if isinstance(body, (bytes, bytearray, memoryview)):
                    conn.endheaders(body)
                else:
                    conn.endheaders()
                    for piece in body:
                        conn.send(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may have answered before reading it all (413): read that
            resp = conn.getresponse()
            size = int(resp.getheader("content-length") or -1)
            if 0 <= size and size >= big and resp.status < 400:
                data: bytes | bytearray = bytearray(size)
                view, got = memoryview(data), 0
                while got < size:
                    n = resp.readinto(view[got:])
                    if not n:
                        raise http.client.IncompleteRead(bytes(view[:got]), size - got)
                    got += n
            else:
                data = resp.read()
            answer = Answer(resp.status, resp.getheader("content-type") or "", data)
        except TimeoutError:
            conn.close()
            raise
        except (http.client.HTTPException, OSError) as e:
            conn.close()
            raise Dropped(f"{type(e).__name__}: {e}") from None
        except BaseException:  # Ctrl-C: the connection is in an unknown state; the server
            conn.close()       # sees it close and cancels the call
            raise
        if timeout is not None:
            conn.sock.settimeout(None)
        if resp.will_close:
            conn.close()
        else:
            self._give_back(conn)
        return answer

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
