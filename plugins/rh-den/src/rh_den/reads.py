"""The store's hottest read (a resource, as every ``rh.load`` of an ``@`` name asks for it) kept
in memory until the database changes.

A store on SQLite is served by one process (the serve lock), but other processes may write
its file too (``rh den user add`` beside a running store). Before answering from memory, a
read asks SQLite's ``PRAGMA data_version`` on a read-only connection of its own (a few
microseconds): the number changes whenever any other connection commits, in this process or
another, and then everything kept is dropped. A kept answer was read after the last commit
it could miss was seen, so it is never older than the database. A store on PostgreSQL, which
several stores may share, keeps nothing (:class:`NoReads`).
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

#: Bytes of answers kept at most; past it they are all dropped (the next reads fill it again).
LIMIT_BYTES = 64 << 20


class NoReads:
    """Keeps nothing: every read goes to the database."""

    def current(self) -> dict:
        return {}

    def keep(self, kept: dict, key, value, size: int) -> None:
        pass

    def close(self) -> None:
        pass


class Reads:
    """Answers kept since the database last changed (see the module's docstring)."""

    def __init__(self, path: Path):
        self._conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                     check_same_thread=False)
        self._lock = threading.Lock()
        self._seen: int | None = None
        self._kept: dict = {}
        self._bytes = 0

    @classmethod
    def open(cls, path: Path | None):
        """Reads of the SQLite file ``path``; :class:`NoReads` for PostgreSQL (None) or when
        the file cannot be opened for reading."""
        if path is None:
            return NoReads()
        try:
            return cls(path)
        except sqlite3.Error:
            return NoReads()

    def current(self) -> dict:
        """The answers kept, valid now: a dict to look up and to add answers read from now
        on."""
        with self._lock:
            try:
                seen = self._conn.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error:
                return {}  # the file went away or is broken: read it, and say what failed
            if seen != self._seen or self._bytes > LIMIT_BYTES:
                self._seen, self._kept, self._bytes = seen, {}, 0
            return self._kept

    def keep(self, kept: dict, key, value, size: int) -> None:
        """Keep ``value`` (about ``size`` bytes) under ``key`` in ``kept``, a dict
        :meth:`current` gave before the value was read."""
        with self._lock:
            if kept is self._kept:  # else the database changed meanwhile: keep nothing
                kept[key] = value
                self._bytes += size + 200

    def close(self) -> None:
        with self._lock:
            self._conn.close()
