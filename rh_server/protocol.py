"""Frames between the server and its env workers, over a Unix socket.

A message is ``kind(1) | request id(u64) | nparts(u32) | u64 len * nparts | parts``. Large parts
are sent as they are (``sendmsg``/``sock_sendall`` of memoryviews, never joined) and received
straight into a bytearray of their size, so a large argument is copied once per hop, by the
kernel, and arrives writable.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading

HEAD = struct.Struct("!cQI")
LEN = struct.Struct("!Q")

# server -> worker
DEFINE, CALL, MAP, DELETE, SHUTDOWN, CANCEL = b"D", b"C", b"M", b"X", b"Q", b"K"
# worker -> server
HELLO, RESULT, ERROR, ITEM, LOG = b"H", b"R", b"E", b"I", b"L"


def pack(kind: bytes, rid: int, parts: list) -> list:
    """The buffers of one message, ready for ``sendmsg``/``writelines``."""
    sizes = [p.nbytes if isinstance(p, memoryview) else len(p) for p in parts]
    head = HEAD.pack(kind, rid, len(parts)) + b"".join(LEN.pack(s) for s in sizes)
    return [head, *parts]


def jpart(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


CHUNK = 1 << 16


class _Reader:
    """Buffered reading of exact byte counts: small reads come from one reused buffer, a large
    part is received straight into its own (writable) bytearray."""

    def __init__(self):
        self._rbuf = bytearray(CHUNK)
        self._rview = memoryview(self._rbuf)
        self._pos = self._end = 0

    def _take(self, n: int) -> bytearray | None:
        if self._end - self._pos >= n:
            out = self._rbuf[self._pos:self._pos + n]
            self._pos += n
            return out
        return None

    def _start(self, n: int) -> tuple[bytearray, memoryview, int]:
        out = bytearray(n)
        view = memoryview(out)
        avail = self._end - self._pos
        view[:avail] = self._rview[self._pos:self._end]
        self._pos = self._end = 0
        return out, view, avail

    def _keep(self, view: memoryview, got: int, n: int, k: int) -> int:
        """Copy what a buffer refill brought for this part; keep the rest buffered."""
        take = min(k, n - got)
        view[got:got + take] = self._rview[:take]
        self._pos, self._end = take, k
        return got + take


class BlockingConn(_Reader):
    """The worker's end: blocking reads under one lock, locked writes from many threads."""

    def __init__(self, sock: socket.socket):
        super().__init__()
        self.sock = sock
        self._wlock = threading.Lock()
        self.rlock = threading.Lock()

    def _read_exact(self, n: int) -> bytearray:
        out = self._take(n)
        if out is not None:
            return out
        out, view, got = self._start(n)
        while got < n:
            if n - got >= CHUNK:
                k = self.sock.recv_into(view[got:])
                if k == 0:
                    raise EOFError("server closed the worker socket")
                got += k
            else:
                k = self.sock.recv_into(self._rview)
                if k == 0:
                    raise EOFError("server closed the worker socket")
                got = self._keep(view, got, n, k)
        return out

    def recv(self) -> tuple[bytes, int, list[bytearray]]:
        kind, rid, nparts = HEAD.unpack(self._read_exact(HEAD.size))
        sizes = struct.unpack(f"!{nparts}Q", self._read_exact(8 * nparts)) if nparts else ()
        return kind, rid, [self._read_exact(s) for s in sizes]

    def send(self, kind: bytes, rid: int, parts: list) -> None:
        bufs = [memoryview(b).cast("B") for b in pack(kind, rid, parts)]
        with self._wlock:
            while bufs:
                sent = self.sock.sendmsg(bufs[:512])
                while sent:
                    if sent >= bufs[0].nbytes:
                        sent -= bufs[0].nbytes
                        bufs.pop(0)
                    else:
                        bufs[0] = bufs[0][sent:]
                        sent = 0
                while bufs and bufs[0].nbytes == 0:
                    bufs.pop(0)


class WorkerProtocol(asyncio.BufferedProtocol):
    """The server's end of a worker socket, as an asyncio buffered protocol.

    The event loop receives straight into our buffer (no allocation per read); messages are
    parsed in ``buffer_updated`` and handed to ``on_message`` at once, without a reader task.
    A large part is received directly into its own bytearray.
    """

    def __init__(self, on_message, on_lost):
        self.on_message, self.on_lost = on_message, on_lost
        self.buf = bytearray(CHUNK)
        self.view = memoryview(self.buf)
        self.start = self.end = 0
        self.head: tuple | None = None
        self.sizes: tuple = ()
        self.parts: list = []
        self.direct: tuple[bytearray, memoryview] | None = None
        self.direct_got = 0
        self.transport: asyncio.Transport | None = None
        self._wlock = asyncio.Lock()
        self._can_write: asyncio.Future | None = None

    # ---------------------------------------------------------------- reading

    def connection_made(self, transport) -> None:
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.direct is not None:
            return self.direct[1][self.direct_got:]
        if len(self.buf) - self.end < CHUNK // 4:
            n = self.end - self.start
            self.buf[:n] = self.buf[self.start:self.end]
            self.start, self.end = 0, n
        return self.view[self.end:]

    def buffer_updated(self, nbytes: int) -> None:
        if self.direct is not None:
            self.direct_got += nbytes
            if self.direct_got < len(self.direct[0]):
                return
            self.parts.append(self.direct[0])
            self.direct = None
        else:
            self.end += nbytes
        self._parse()

    def _need(self, n: int) -> bool:
        if self.end - self.start >= n:
            return True
        if n > len(self.buf):  # a header larger than the buffer: grow it
            self.buf[len(self.buf):] = bytes(n - len(self.buf))
            self.view = memoryview(self.buf)
        return False

    def _parse(self) -> None:
        while True:
            if self.head is None:
                if not self._need(HEAD.size):
                    return
                self.head = HEAD.unpack_from(self.buf, self.start)
                self.start += HEAD.size
                self.sizes, self.parts = None, []
            kind, rid, nparts = self.head
            if self.sizes is None:
                if not self._need(8 * nparts):
                    return
                self.sizes = struct.unpack_from(f"!{nparts}Q", self.buf, self.start)
                self.start += 8 * nparts
            while len(self.parts) < nparts:
                size = self.sizes[len(self.parts)]
                avail = self.end - self.start
                if avail >= size:
                    self.parts.append(self.buf[self.start:self.start + size])
                    self.start += size
                    continue
                # Receive the rest of this part straight into its own buffer.
                out = bytearray(size)
                out[:avail] = self.buf[self.start:self.end]
                self.start = self.end = 0
                self.direct, self.direct_got = (out, memoryview(out)), avail
                return
            self.head = None
            self.on_message(kind, rid, self.parts)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)
        self.on_lost()

    # ---------------------------------------------------------------- writing

    def pause_writing(self) -> None:
        self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._can_write is not None and not self._can_write.done():
            self._can_write.set_result(None)

    async def send(self, kind: bytes, rid: int, parts: list) -> None:
        bufs = pack(kind, rid, parts)
        total = sum(b.nbytes if isinstance(b, memoryview) else len(b) for b in bufs)
        if self.transport is None or self.transport.is_closing():
            raise ConnectionResetError("worker socket is closed")
        async with self._wlock:
            if total <= CHUNK:
                self.transport.write(b"".join(bufs))
            else:  # in slices, waiting for the socket between them: little is buffered
                for b in bufs:
                    view = memoryview(b).cast("B")
                    for i in range(0, view.nbytes, 4 * CHUNK):
                        self.transport.write(view[i:i + 4 * CHUNK])
                        if self._can_write is not None and not self._can_write.done():
                            await self._can_write

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class NotFound(LookupError):
    """Raised in a worker when a name, method or attribute does not exist there."""
