"""The call path's own HTTP transport: keep-alive connections for sending a request and reading
its answer whole, with a small HTTP/1.1 codec of its own.

Why not a library here: per request, httpx costs about 0.2 ms on these machines, ``http.client``
about 0.1 ms (most of it parsing the answer's headers with the ``email`` package, and it sends
headers and body in two writes), h11 more than that; the codec below costs a few microseconds.
It speaks to rh's own server (and the shared store), so it needs only what they answer: a status
line, headers, a body delimited by ``Content-Length`` (or chunked, or by the connection's end);
anything else is a clear :class:`Dropped`. Plain calls, maps, async runs and the shared store's
client go through here; streams and the other routes keep httpx, where its features matter.

A request goes out in one write (headers and a small body together). Connections are checked
before reuse (a socket the server closed while idle reads as ready), so a keep-alive connection
the server dropped is never sent a call.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import threading
import weakref
from typing import Callable, Iterable
from urllib.parse import urlsplit

CONNECT_TIMEOUT = 15.0
#: Bodies below this go out in the same write as the headers (copied once); larger ones after.
JOIN_BELOW = 64 * 1024
#: The most header bytes an answer may have.
MAX_HEAD = 64 * 1024
READ = 256 * 1024


class Dropped(ConnectionError):
    """The connection broke after the request was (perhaps) sent: the outcome is unknown."""


class Refused(ConnectionError):
    """No connection could be made: nothing was sent."""


class Answer:
    """A response, read whole: status, the headers rh reads, the body."""

    __slots__ = ("status", "content_type", "body")

    def __init__(self, status: int, content_type: str, body: bytes | bytearray):
        self.status, self.content_type, self.body = status, content_type, body


def parse_head(block: bytes) -> tuple[int, dict[bytes, bytes], bool] | None:
    """An answer's status line and headers (without the blank line): status, headers (names
    lower-cased), whether the server closes after it; None for an informational (1xx) answer."""
    lines = block.split(b"\r\n")
    version, _, tail = lines[0].partition(b" ")
    try:
        status = int(tail[:3])
    except ValueError:
        raise Dropped(f"not an HTTP answer: {lines[0][:80]!r}") from None
    if not version.startswith(b"HTTP/1."):
        raise Dropped(f"not an HTTP/1 answer: {lines[0][:80]!r}")
    if 100 <= status < 200:
        return None
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        key, sep, value = line.partition(b":")
        if not sep:
            raise Dropped(f"a malformed header line in the answer: {line[:80]!r}")
        headers[key.strip().lower()] = value.strip()
    closes = headers.get(b"connection", b"").lower() == b"close" or version == b"HTTP/1.0"
    return status, headers, closes


def chunk_size(line: bytes) -> int:
    try:
        return int(line.split(b";", 1)[0], 16)
    except ValueError:
        raise Dropped(f"a malformed chunk size in the answer: {line[:40]!r}") from None


class _Conn:
    """One keep-alive connection: its socket and the bytes read past the last answer."""

    __slots__ = ("sock", "rest")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.rest = b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _more(self) -> bytes:
        data = self.sock.recv(READ)
        if not data:
            raise Dropped("the server closed the connection before it answered in full")
        return data

    def read_head(self) -> tuple[int, dict[bytes, bytes], bool]:
        """Status, headers (names lower-cased) and whether the server closes after this answer;
        informational (1xx) answers are skipped."""
        while True:
            buf = self.rest
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                if len(buf) > MAX_HEAD:
                    raise Dropped(f"the answer's headers exceed {MAX_HEAD} bytes")
                buf += self._more()
                end = buf.find(b"\r\n\r\n")
            self.rest = buf[end + 4:]
            head = parse_head(buf[:end])
            if head is not None:
                return head

    def read_exactly(self, size: int, big: int) -> bytes | bytearray:
        """``size`` body bytes; into a writable bytearray (read in place) when ``big`` or more."""
        if size >= big:
            data = bytearray(size)
            view = memoryview(data)
            got = min(len(self.rest), size)
            view[:got] = self.rest[:got]
            self.rest = self.rest[got:]
            while got < size:
                n = self.sock.recv_into(view[got:], min(size - got, 1 << 24))
                if not n:
                    raise Dropped(f"the server closed the connection {size - got} bytes before "
                                  f"the end of its answer")
                got += n
            return data
        buf = self.rest
        if len(buf) < size:
            pieces = [buf]
            have = len(buf)
            while have < size:
                piece = self._more()
                pieces.append(piece)
                have += len(piece)
            buf = b"".join(pieces)
        self.rest = buf[size:]
        return buf[:size]

    def read_chunked(self) -> bytes:
        out = []
        while True:
            buf = self.rest
            end = buf.find(b"\r\n")
            while end < 0:
                buf += self._more()
                end = buf.find(b"\r\n")
            size = chunk_size(buf[:end])
            self.rest = buf[end + 2:]
            if size == 0:  # trailers, then the empty line
                while True:
                    buf = self.rest
                    end = buf.find(b"\r\n")
                    while end < 0:
                        buf += self._more()
                        end = buf.find(b"\r\n")
                    self.rest = buf[end + 2:]
                    if end == 0:
                        return b"".join(out)
            out.append(bytes(self.read_exactly(size + 2, 1 << 62))[:size])

    def read_to_end(self) -> bytes:
        pieces = [self.rest]
        self.rest = b""
        while True:
            piece = self.sock.recv(READ)
            if not piece:
                return b"".join(pieces)
            pieces.append(piece)


class LeanPool:
    """Idle keep-alive connections to one server, shared by the client's threads."""

    def __init__(self, base_url: str, verify: bool | ssl.SSLContext, headers: dict[str, str],
                 open_socket: Callable[[], socket.socket] | None = None):
        self.open_socket = open_socket  # a connection's own sockets (ConnectionInfo's), if any
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port or (443 if self.https else 80)
        self.context = None
        if self.https:
            self.context = verify if isinstance(verify, ssl.SSLContext) else \
                ssl.create_default_context()
        self.headers = dict(headers)
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        default = 443 if self.https else 80
        self._host_header = host if self.port == default else f"{host}:{self.port}"
        self._fixed = self._header_block(self.headers)  # the pool's own, encoded once
        self._idle: list[_Conn] = []
        #: Each event loop's idle connections, for :meth:`apost`.
        self._async_idle: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._closed = False

    def _header_block(self, headers: dict[str, str], host: bool = True) -> bytes:
        lines = [f"Host: {self._host_header}"] if host else []
        lines += [f"{k}: {v}" for k, v in headers.items()
                  if k.lower() not in ("host", "content-length")]
        if not lines:
            return b""
        for line in lines:
            if "\r" in line or "\n" in line:
                raise ValueError(f"a header may not hold a line break: {line.split(':')[0]!r}")
        return ("\r\n".join(lines) + "\r\n").encode("latin-1")

    def head(self, method: str, url: str, length: int, headers: dict[str, str] | None = None
             ) -> bytes:
        """A request's head: its line, the pool's headers (and ``headers``), its length."""
        if "\r" in url or "\n" in url or " " in url:
            raise ValueError(f"a request target may not hold spaces or line breaks: {url!r}")
        extra = self._header_block(headers, host=False) if headers else b""
        return b"%s %s HTTP/1.1\r\n%s%sContent-Length: %d\r\n\r\n" % (
            method.encode(), url.encode(), self._fixed, extra, length)

    def _open(self) -> socket.socket:
        """A connected socket: the connection's own (``open_socket``) or TCP to the URL."""
        try:
            if self.open_socket is not None:
                return self.open_socket()
            sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
        except Exception as e:  # noqa: BLE001 - nothing was sent: the caller reconnects
            raise Refused(str(e) or type(e).__name__) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:
            sock.close()
            raise Refused(str(e)) from None
        return sock

    def _connect(self) -> _Conn:
        sock = self._open()
        try:
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.host)
        except OSError as e:  # the TLS handshake (a certificate not trusted, ...)
            sock.close()
            raise Refused(str(e)) from None
        sock.settimeout(None)  # a call may run as long as it runs
        return _Conn(sock)

    def _take(self) -> _Conn:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.rest and not select.select([conn.sock], [], [], 0)[0]:
                    return conn
                conn.close()  # readable while idle: the server closed it
        return self._connect()

    def _give_back(self, conn: _Conn) -> None:
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
        if length is None:
            length = len(body)
        head = self.head(method, url, length, headers)
        small = isinstance(body, (bytes, bytearray, memoryview))
        conn = self._take()
        sock = conn.sock
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            try:
                if small and length < JOIN_BELOW:
                    sock.sendall(head + body)
                else:
                    sock.sendall(head)
                    for piece in ((body,) if small else body):
                        sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may have answered before reading it all (413): read that
            status, got, closes = conn.read_head()
            size = got.get(b"content-length")
            if size is not None:
                data = conn.read_exactly(int(size), big if status < 400 else 1 << 62)
            elif got.get(b"transfer-encoding", b"").lower() == b"chunked":
                data = conn.read_chunked()
            elif status in (204, 304):
                data = b""
            else:
                data, closes = conn.read_to_end(), True
            answer = Answer(status, got.get(b"content-type", b"").decode("latin-1"), data)
        except TimeoutError:
            conn.close()
            raise
        except Dropped:
            conn.close()
            raise
        except (OSError, ValueError) as e:
            conn.close()
            raise Dropped(f"{type(e).__name__}: {e}") from None
        except BaseException:  # Ctrl-C: the connection is in an unknown state; the server
            conn.close()       # sees it close and cancels the call
            raise
        if closes:
            conn.close()
            return answer
        if timeout is not None:
            sock.settimeout(None)
        self._give_back(conn)
        return answer

    async def apost(self, url: str, body: bytes) -> Answer:
        """:meth:`post` of a small body on the running event loop, through that loop's own
        keep-alive connections (no thread): what an awaited call uses. Raises :class:`Refused`
        when no connection could be made, :class:`Dropped` when one broke; cancelling it closes
        the connection (the server then cancels the call)."""
        loop = asyncio.get_running_loop()
        idle = self._async_idle.get(loop)
        if idle is None:
            idle = self._async_idle[loop] = []
        message = self.head("POST", url, len(body)) + body
        while idle:
            reader, writer = idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                break
            writer.close()  # the server closed it while idle
        else:
            try:
                where = {"sock": await asyncio.to_thread(self._open)} if self.open_socket \
                    else {"host": self.host, "port": self.port}
                reader, writer = await asyncio.wait_for(asyncio.open_connection(
                    **where, ssl=self.context, limit=MAX_HEAD,
                    server_hostname=self.host if self.context else None), CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as e:
                raise Refused(str(e) or type(e).__name__) from None
        try:
            writer.write(message)
            while True:
                head = parse_head((await reader.readuntil(b"\r\n\r\n"))[:-4])
                if head is not None:
                    break
            status, got, closes = head
            size = got.get(b"content-length")
            if size is not None:
                data = await reader.readexactly(int(size))
            elif got.get(b"transfer-encoding", b"").lower() == b"chunked":
                pieces = []
                while (n := chunk_size((await reader.readuntil(b"\r\n"))[:-2])):
                    pieces.append((await reader.readexactly(n + 2))[:-2])
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                data = b"".join(pieces)
            elif status in (204, 304):
                data = b""
            else:
                data, closes = await reader.read(), True
        except Dropped:
            writer.close()
            raise
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            writer.close()
            raise Dropped(f"{type(e).__name__}: {e}") from None
        except BaseException:  # cancelled: the server sees the connection close
            writer.close()
            raise
        if closes or self._closed:
            writer.close()
        else:
            idle.append((reader, writer))
        return Answer(status, got.get(b"content-type", b"").decode("latin-1"), data)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            loops, self._async_idle = list(self._async_idle.items()), weakref.WeakKeyDictionary()
        for conn in idle:
            conn.close()
        for loop, conns in loops:  # writers belong to their loop: close them there
            for _, writer in conns:
                if loop.is_closed():
                    continue
                try:
                    loop.call_soon_threadsafe(writer.close)
                except RuntimeError:
                    pass
