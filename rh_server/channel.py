"""The server's end of an env worker's socket: the frames of :mod:`rh_server.protocol` read
and written on the server's event loop. The worker's end (``protocol.Conn``) uses plain
threads, so a worker does not load asyncio unless the code it runs is async.
"""

from __future__ import annotations

import asyncio
import struct

from rh_server.protocol import CHUNK, HEAD, pack


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
        if total <= CHUNK and not self._wlock.locked():  # the usual small message: one write
            self.transport.write(b"".join(bufs))         # (no large one is being written)
            return
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
