"""How many calls an env worker process runs at once: one per call thread (its env's
``threads``), counted on the server.

A call takes a slot before it is sent and gives it back when its final answer arrives, not when
its caller stops waiting (a cancelled call may still be running). While every slot is taken,
calls wait here, oldest first; one cancelled while it waits ends here and the worker never hears
of it. The worker runs one thread more than it has slots, so a thread is always free to read a
cancel, even while every call thread is busy.
"""

from __future__ import annotations

import asyncio
import collections


class Slots:
    def __init__(self, n: int):
        self._free = n
        #: request ids holding a slot
        self._taken: set[int] = set()
        #: (request id, wait) of the calls waiting for a slot, oldest first
        self._queue: collections.deque[tuple[int, asyncio.Future]] = collections.deque()
        self._waiting: dict[int, asyncio.Future] = {}
        self._ended = False

    async def take(self, rid: int) -> bool:
        """A slot for call ``rid``: at once while one is free, else the next given back; False
        when the call was dropped (:meth:`drop`, :meth:`end`) while it waited."""
        if self._free > 0:
            self._free -= 1
            self._taken.add(rid)
            return True
        wait = asyncio.get_running_loop().create_future()
        self._queue.append((rid, wait))
        self._waiting[rid] = wait
        try:
            return await wait
        except BaseException:  # its caller went away: a slot it was just given goes on
            if wait.done() and not wait.cancelled() and wait.result():
                self.answered(rid)
            else:
                wait.cancel()
            raise
        finally:
            self._waiting.pop(rid, None)

    def answered(self, rid: int) -> None:
        """Call ``rid`` got its final answer: its slot goes to the call waiting longest."""
        if rid not in self._taken:
            return
        self._taken.discard(rid)
        if self._ended:
            return
        while self._queue:
            other, wait = self._queue.popleft()
            if not wait.done():
                self._taken.add(other)
                wait.set_result(True)
                return
        self._free += 1

    def drop(self, rid: int) -> bool:
        """Stop call ``rid`` from waiting; whether it was waiting (then it was never sent)."""
        wait = self._waiting.get(rid)
        if wait is None or wait.done():
            return False
        wait.set_result(False)
        return True

    def end(self) -> None:
        """The process ended: every waiting call is dropped (its caller learns why)."""
        self._ended, self._free, self._taken = True, 0, set()
        while self._queue:
            _, wait = self._queue.popleft()
            if not wait.done():
                wait.set_result(False)
