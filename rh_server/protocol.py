"""Frames between the server and its env workers, over a Unix socket.

A message is ``kind(1) | request id(u64) | nparts(u32) | u64 len * nparts | parts``. Parts are
sent with ``sendmsg``/``writelines`` as they are, so large payloads are never joined.
"""

from __future__ import annotations

import json
import socket
import struct
import threading

HEAD = struct.Struct("!cQI")
LEN = struct.Struct("!Q")

# server -> worker
DEFINE, CALL, MAP, DELETE, GETATTR, SHUTDOWN = b"D", b"C", b"M", b"X", b"A", b"Q"
# worker -> server
HELLO, RESULT, ERROR, ITEM, LOG, DONE = b"H", b"R", b"E", b"I", b"L", b"K"


def pack(kind: bytes, rid: int, parts: list) -> list:
    """The buffers of one message, ready for ``sendmsg``/``writelines``."""
    sizes = [p.nbytes if isinstance(p, memoryview) else len(p) for p in parts]
    head = HEAD.pack(kind, rid, len(parts)) + b"".join(LEN.pack(s) for s in sizes)
    return [head, *parts]


def jpart(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class BlockingConn:
    """The worker's end: blocking reads on one thread, locked writes from many."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._wlock = threading.Lock()

    def _read_exact(self, n: int) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:], n - got)
            if k == 0:
                raise EOFError("server closed the worker socket")
            got += k
        return buf

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


class NotFound(LookupError):
    """Raised in a worker when a name, method or attribute does not exist there."""
