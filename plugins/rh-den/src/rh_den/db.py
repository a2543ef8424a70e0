"""The store's database: its tables (SQLAlchemy Core) and how to open one.

One schema serves SQLite (a file: the embedded default) and PostgreSQL (teams). Every write is
one short transaction; SQLite's begin ``IMMEDIATE`` so that two writers queue instead of one
failing half-way, PostgreSQL's ordinary ones with conditional updates (a version bump only
happens ``WHERE version = <the one the writer started from>``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from rh_den.errors import DenError

meta = sa.MetaData()

users = sa.Table(
    "users", meta,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("email", sa.String(254), unique=True, nullable=True),
    sa.Column("admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created", sa.Float, nullable=False),
)

groups = sa.Table(
    "groups", meta,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("created", sa.Float, nullable=False),
)

members = sa.Table(
    "members", meta,
    sa.Column("group_name", sa.String(64), sa.ForeignKey("groups.name", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name", ondelete="CASCADE"),
              primary_key=True),
)

tokens = sa.Table(
    "tokens", meta,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("user_name", sa.String(64), sa.ForeignKey("users.name", ondelete="CASCADE"),
              nullable=False, index=True),
    sa.Column("name", sa.String(64), nullable=False),
    #: SHA-256 of the token: the token itself is shown once and never kept.
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("last_used", sa.Float, nullable=True),
    sa.Column("expires", sa.Float, nullable=True),
    sa.Column("revoked", sa.Float, nullable=True),
    #: Browser sessions of the page are tokens too (kind ``session``), with their CSRF secret.
    sa.Column("kind", sa.String(16), nullable=False, default="api"),
    sa.Column("csrf", sa.String(64), nullable=True),
)

resources = sa.Table(
    "resources", meta,
    #: The name without ``@/``: ``alice/proj/summer``.
    sa.Column("path", sa.String(512), primary_key=True),
    #: Its first part: the user or group whose folder holds it.
    sa.Column("owner", sa.String(64), nullable=False, index=True),
    #: The folder holding it (``alice/proj``), for listing.
    sa.Column("folder", sa.String(512), nullable=False, index=True),
    sa.Column("resource_type", sa.String(64), nullable=False),
    sa.Column("visibility", sa.String(16), nullable=False, default="private"),
    sa.Column("version", sa.Integer, nullable=False),
    #: The cluster it runs on (its ``@`` name without the prefix), so that a cluster can ask
    #: whether a caller may call it; and the name the cluster serves it under.
    sa.Column("cluster", sa.String(512), nullable=True, index=True),
    sa.Column("served_as", sa.String(128), nullable=True),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
)

versions = sa.Table(
    "versions", meta,
    sa.Column("path", sa.String(512), sa.ForeignKey("resources.path", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("timestamp", sa.Float, nullable=False),
)

shares = sa.Table(
    "shares", meta,
    sa.Column("path", sa.String(512), sa.ForeignKey("resources.path", ondelete="CASCADE"),
              primary_key=True),
    #: A user's or a group's name.
    sa.Column("principal", sa.String(64), primary_key=True),
    sa.Column("access", sa.String(8), nullable=False),
)


def engine_url(db: str) -> str:
    """SQLAlchemy's URL for what a user writes after ``--db``: a file path (SQLite) or a
    ``postgresql://`` URL (driven by psycopg 3)."""
    if re.match(r"^postgres(ql)?://", db):
        return re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", db)
    if "://" in db:
        if db.startswith(("sqlite://", "postgresql+psycopg://")):
            return db
        raise DenError(400, "bad_db", f"--db must be a file path (SQLite) or a postgresql:// URL, "
                                      f"got {redact(db)!r}")
    return f"sqlite:///{Path(db).expanduser().resolve()}"


def redact(db: str) -> str:
    """A database URL with its password replaced, for messages and logs."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", db)


def sqlite_path(db: str) -> Path | None:
    url = engine_url(db)
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def open_engine(db: str) -> sa.Engine:
    """An engine for ``db`` with the tables created, or a DenError that says what is wrong
    with the database (a folder that does not exist, a file that cannot be written, a
    PostgreSQL that does not answer or refuses the login)."""
    url = engine_url(db)
    path = sqlite_path(db)
    if path is not None:
        if not path.parent.is_dir():
            raise DenError(400, "bad_db", f"the folder of the database {path} does not exist")
        if path.exists() and not os.access(path, os.W_OK):
            raise DenError(503, "db_read_only", f"the database {path} cannot be written (check "
                                                f"its permissions)")
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                                  pool_size=8, max_overflow=32)
        _sqlite_transactions(engine)
    else:
        engine = sa.create_engine(url, pool_size=8, max_overflow=32, pool_pre_ping=True)
    try:
        meta.create_all(engine)
    except sa.exc.OperationalError as e:
        engine.dispose()
        raise DenError(503, "db_unavailable",
                       f"cannot open the database {redact(db)}: {_reason(e)}") from None
    return engine


def _reason(e: sa.exc.DBAPIError) -> str:
    text = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
    return redact(text)


def _sqlite_transactions(engine: sa.Engine) -> None:
    """WAL (readers never wait for the writer), a busy timeout, foreign keys on, and writes
    that begin IMMEDIATE: a write transaction takes the lock before reading, so two writers
    queue instead of the second failing when it upgrades."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # the begin event below issues BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        write = conn.get_execution_options().get("rh_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
