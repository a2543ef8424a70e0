"""Frames between the server and its env workers, over a Unix socket.

A message is ``kind(1) | request id(u64) | nparts(u32) | u64 len * nparts | parts``. Large parts
are sent as they are (``sendmsg``/``sock_sendall`` of memoryviews, never joined) and received
straight into a bytearray of their size, so a large argument is copied once per hop, by the
kernel, and arrives writable.
"""

from __future__ import annotations

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
        sizes = [p.nbytes if isinstance(p, memoryview) else len(p) for p in parts]
        head = HEAD.pack(kind, rid, len(parts)) + b"".join(LEN.pack(n) for n in sizes)
        if sum(sizes) < CHUNK:  # small (most answers): one copy, one write
            data = b"".join((head, *parts))
            with self._wlock:
                self.sock.sendall(data)
            return
        bufs = [memoryview(b).cast("B") for b in (head, *parts)]
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


class NotFound(LookupError):
    """Raised in a worker when a name, method or attribute does not exist there."""
