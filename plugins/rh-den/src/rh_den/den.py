"""The store as one object: a database, its accounts and its catalog of resources.

``Den(db)`` opens (and creates) the database; the API, the page and the ``rh den`` commands all
go through it. Writes are short transactions; with SQLite they also pass one lock of this
process, so the threads serving requests queue for the single writer SQLite allows instead of
waiting on its file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path

import sqlalchemy as sa

from rh_den import db
from rh_den.accounts import Accounts
from rh_den.catalog import Catalog
from rh_den.errors import DenError
from rh_den.reads import Reads
from rh_den.vault import Vault, key_file_for, load_key


class Den:
    """A store over the database ``db`` (a SQLite file path or a ``postgresql://`` URL)."""

    def __init__(self, db_url: str, secret_key_file: str | None = None,
                 make_key: bool = False):
        self.db_url = db_url
        self.engine = db.open_engine(db_url)
        self.sqlite = db.sqlite_path(db_url)
        self._lock = threading.Lock() if self.sqlite else contextlib.nullcontext()
        self.accounts = Accounts(self.engine, self.write)
        self.reads = Reads.open(self.sqlite)
        self.catalog = Catalog(self.engine, self.write, self.accounts, self.reads)
        self.key_file = key_file_for(self.sqlite, secret_key_file)
        self.vault = Vault(self.engine, self.write, load_key(self.key_file, make_key))

    @contextlib.contextmanager
    def write(self):
        """A connection in a write transaction, committed on leaving, rolled back on error."""
        with self._lock:
            try:
                with self.engine.connect().execution_options(rh_write=True) as conn:
                    with conn.begin():
                        yield conn
            except sa.exc.IntegrityError:
                # Two writers created the same thing at once (PostgreSQL); the other one won.
                raise DenError(409, "conflict", "another request changed this at the same "
                                                "time; try again") from None
            except sa.exc.DBAPIError as e:
                raise DenError(503, "db_unavailable", db_problem(self.db_url, e)) from None

    def close(self) -> None:
        self.reads.close()
        self.engine.dispose()

    @property
    def where(self) -> str:
        """The database as a person reads it (the password of a URL hidden)."""
        return str(self.sqlite) if self.sqlite else db.redact(self.db_url)


def db_problem(url: str, e: sa.exc.DBAPIError) -> str:
    """What went wrong with the database, as a person reads it (no password)."""
    text = str(e.orig or e).strip().splitlines()[0]
    if any(w in text for w in ("readonly", "read-only", "permission denied")):
        return f"the database {db.redact(url)} cannot be written ({db.redact(text)}): check its " \
               f"permissions"
    return f"the database {db.redact(url)} failed: {db.redact(text)}"


class ServeLock:
    """One ``rh den serve`` per SQLite file: an exclusive lock on ``<db>.lock``, held while
    serving, released by the OS when the process ends (even when killed)."""

    def __init__(self, path: Path):
        self.path = path.with_name(path.name + ".lock")
        self._fd: int | None = None

    def __enter__(self):
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DenError(409, "in_use", f"the database {self.path.with_suffix('')} is already "
                           f"served by rh den serve (pid {holder}); stop that one, or serve a "
                           f"copy of the file") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None
