"""Users, groups and tokens of the store.

A token is ``rhd_`` and 43 random characters, shown once; the database keeps its SHA-256 and
its id (the first characters users see in listings). A token that is not accepted is answered
with why: unknown, revoked (when, by name) or expired (when). Browser sessions of the page are
tokens of kind ``session`` with a CSRF secret of their own.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import re
import secrets
import time

import attrs
import sqlalchemy as sa

from rh_den import db
from rh_den.errors import DenError, bad

PREFIX = "rhd_"
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
EMAIL = re.compile(r"^[^@\s/]+@[^@\s/]+\.[^@\s/]+$")
#: last_used is written at most this often per token (each write is a database transaction).
TOUCH_SECONDS = 60.0
#: How long this process remembers whom a token belongs to. Revoking a token, ending a session
#: or changing a group here forgets at once; another process on the same PostgreSQL database
#: sees a revoke within this time.
REMEMBER_SECONDS = 2.0
SESSION_SECONDS = 12 * 3600.0


@attrs.frozen
class User:
    """Who a request is from."""

    name: str
    email: str | None = None
    admin: bool = False
    groups: tuple[str, ...] = ()
    #: The id of the token the request came with (None for the database's own tools).
    token_id: str | None = None
    csrf: str | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def when(epoch: float | None) -> str | None:
    """An epoch as ISO 8601 UTC text (what the API answers with)."""
    return None if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def check_name(name: str, what: str = "user") -> str:
    if not isinstance(name, str) or not NAME.match(name):
        raise bad(f"bad {what} name {name!r:.80}: use 1-63 lowercase letters, digits, '_' or "
                  f"'-', starting with a letter or digit")
    return name


class Accounts:
    """Users, groups and tokens, over one engine. ``writer`` is the engine's connection factory
    for write transactions (see :class:`rh_den.den.Den`)."""

    def __init__(self, engine: sa.Engine, writer):
        self.engine, self._write = engine, writer
        self._known: dict[tuple[str, str], tuple[User, float]] = {}
        self._toucher = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rh-den-touch")

    def _touch(self, token_id: str, when_used: float) -> None:
        try:
            with self._write() as conn:
                conn.execute(db.tokens.update().where(db.tokens.c.id == token_id).values(
                    last_used=when_used))
        except DenError:
            pass  # only the "last used" column; the next use writes it again

    def forget(self) -> None:
        """Forget who tokens belong to (after a revoke or a change of groups)."""
        self._known.clear()

    # ------------------------------------------------------------------ users and groups

    def add_user(self, name: str, email: str | None = None, admin: bool = False) -> tuple[User, str]:
        """A new user and their first token (returned once)."""
        check_name(name)
        if email is not None and not EMAIL.match(email):
            raise bad(f"bad email address {email!r:.80}")
        with self._write() as conn:
            self._refuse_taken(conn, name)
            if email and conn.execute(sa.select(db.users.c.name).where(
                    db.users.c.email == email)).first():
                raise DenError(409, "exists", f"another user has the email address {email}")
            conn.execute(db.users.insert().values(name=name, email=email, admin=bool(admin),
                                                  created=time.time()))
            token, _ = self._new_token(conn, name, "default", None)
        return User(name, email, bool(admin)), token

    def add_group(self, name: str, members: list[str]) -> list[str]:
        """A new group (a folder its members write) with ``members``; returns them."""
        check_name(name, "group")
        with self._write() as conn:
            self._refuse_taken(conn, name)
            conn.execute(db.groups.insert().values(name=name, created=time.time()))
            kept = self._add_members(conn, name, members)
        self.forget()
        return kept

    def set_members(self, name: str, add: list[str] = (), remove: list[str] = ()) -> list[str]:
        with self._write() as conn:
            if not conn.execute(sa.select(db.groups.c.name).where(db.groups.c.name == name)).first():
                raise DenError(404, "not_found", f"no group {name!r}")
            self._add_members(conn, name, list(add))
            users = [self._user_name(conn, u) for u in remove]
            if users:
                conn.execute(db.members.delete().where(db.members.c.group_name == name,
                                                       db.members.c.user_name.in_(users)))
            kept = self._members(conn, name)
        self.forget()
        return kept

    def _add_members(self, conn, group: str, members: list[str]) -> list[str]:
        have = set(self._members(conn, group))
        for m in members:
            user = self._user_name(conn, m)
            if user not in have:
                conn.execute(db.members.insert().values(group_name=group, user_name=user))
                have.add(user)
        return sorted(have)

    @staticmethod
    def _members(conn, group: str) -> list[str]:
        return sorted(r[0] for r in conn.execute(
            sa.select(db.members.c.user_name).where(db.members.c.group_name == group)))

    @staticmethod
    def _refuse_taken(conn, name: str) -> None:
        for table in (db.users, db.groups):
            if conn.execute(sa.select(table.c.name).where(table.c.name == name)).first():
                raise DenError(409, "exists", f"the name {name!r} is taken (users and groups "
                                              f"share one set of folder names)")

    def _user_name(self, conn, who: str) -> str:
        """A user's name from their name or email address; 404 naming the unknown one."""
        col = db.users.c.email if "@" in who else db.users.c.name
        row = conn.execute(sa.select(db.users.c.name).where(col == who)).first()
        if row is None:
            raise DenError(404, "unknown_user", f"no user {who!r} in this store; ask an admin to "
                                                f"add them (rh den user add)")
        return row[0]

    def principal(self, conn, who: str) -> str:
        """A user's or a group's name (a user may be given by email address)."""
        if "@" not in who and conn.execute(
                sa.select(db.groups.c.name).where(db.groups.c.name == who)).first():
            return who
        col = db.users.c.email if "@" in who else db.users.c.name
        row = conn.execute(sa.select(db.users.c.name).where(col == who)).first()
        if row is None:
            raise DenError(404, "unknown_user", f"no user or group {who!r} in this store")
        return row[0]

    def is_group(self, conn, name: str) -> bool:
        return conn.execute(sa.select(db.groups.c.name).where(db.groups.c.name == name)).first() \
            is not None

    def users(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(db.users).order_by(db.users.c.name)).mappings().all()
            return [{"name": r["name"], "email": r["email"], "admin": r["admin"],
                     "created": when(r["created"])} for r in rows]

    def groups(self) -> list[dict]:
        with self.engine.connect() as conn:
            names = [r[0] for r in conn.execute(sa.select(db.groups.c.name).order_by(
                db.groups.c.name))]
            return [{"name": n, "members": self._members(conn, n)} for n in names]

    def groups_of(self, conn, user: str) -> tuple[str, ...]:
        return tuple(sorted(r[0] for r in conn.execute(
            sa.select(db.members.c.group_name).where(db.members.c.user_name == user))))

    # ------------------------------------------------------------------ tokens

    def _new_token(self, conn, user: str, name: str, expires_in: float | None,
                   kind: str = "api") -> tuple[str, dict]:
        token = PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        row = {"id": secrets.token_hex(4), "user_name": user, "name": name,
               "hash": token_hash(token), "created": now, "last_used": None,
               "expires": now + expires_in if expires_in else None, "revoked": None,
               "kind": kind, "csrf": secrets.token_urlsafe(24) if kind == "session" else None}
        conn.execute(db.tokens.insert().values(**row))
        return token, row

    def create_token(self, user: str, name: str = "default", expires_in: float | None = None,
                     kind: str = "api") -> tuple[str, dict]:
        check_name(name, "token")
        if expires_in is not None and not expires_in > 0:
            raise bad("a token's lifetime must be above zero")
        with self._write() as conn:
            self._user_name(conn, user)
            token, row = self._new_token(conn, user, name, expires_in, kind)
        return token, self._public(row)

    def list_tokens(self, user: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(db.tokens).where(
                db.tokens.c.user_name == user, db.tokens.c.kind == "api").order_by(
                db.tokens.c.created)).mappings().all()
        return [self._public(r) for r in rows]

    def revoke_token(self, user: str, token_id: str) -> dict:
        with self._write() as conn:
            row = self._own_token(conn, user, token_id)
            if row["revoked"] is None:
                conn.execute(db.tokens.update().where(db.tokens.c.id == token_id).values(
                    revoked=time.time()))
            row = conn.execute(sa.select(db.tokens).where(db.tokens.c.id == token_id)).mappings().one()
            # A page session made from this token ends with it.
            conn.execute(db.tokens.update().where(
                db.tokens.c.user_name == user, db.tokens.c.kind == "session",
                db.tokens.c.name == f"session-{token_id}").values(revoked=time.time()))
        self.forget()
        return self._public(row)

    def rotate_token(self, user: str, token_id: str) -> tuple[str, dict]:
        """Revoke a token and make its successor with the same name and lifetime."""
        with self._write() as conn:
            old = self._own_token(conn, user, token_id)
            if old["revoked"] is not None:
                raise DenError(409, "revoked", f"token {token_id} was revoked already; create a "
                                               f"new one (rh den token create)")
            life = old["expires"] - old["created"] if old["expires"] else None
            conn.execute(db.tokens.update().where(db.tokens.c.id == token_id).values(
                revoked=time.time()))
            token, row = self._new_token(conn, user, old["name"], life)
        self.forget()
        return token, self._public(row)

    def _own_token(self, conn, user: str, token_id: str) -> dict:
        row = conn.execute(sa.select(db.tokens).where(
            db.tokens.c.id == token_id, db.tokens.c.user_name == user,
            db.tokens.c.kind == "api")).mappings().first()
        if row is None:
            raise DenError(404, "not_found", f"you have no token with id {token_id!r} (see "
                                             f"rh den token list)")
        return dict(row)

    @staticmethod
    def _public(row) -> dict:
        expired = bool(row["expires"] and row["expires"] <= time.time())
        return {"id": row["id"], "name": row["name"], "created": when(row["created"]),
                "last_used": when(row["last_used"]), "expires": when(row["expires"]),
                "revoked": when(row["revoked"]), "expired": expired}

    def create_session(self, user: User) -> str:
        """A browser session for the page, made from the token ``user`` logged in with: it
        ends when that token ends (revoked, expired) or after 12 hours."""
        with self._write() as conn:
            parent = conn.execute(sa.select(db.tokens.c.expires).where(
                db.tokens.c.id == user.token_id)).scalar()
            life = SESSION_SECONDS if parent is None else min(SESSION_SECONDS, parent - time.time())
            token, _ = self._new_token(conn, user.name, f"session-{user.token_id}", life,
                                       "session")
        return token

    def end_session(self, session_id: str) -> None:
        with self._write() as conn:
            conn.execute(db.tokens.update().where(
                db.tokens.c.id == session_id, db.tokens.c.kind == "session").values(
                revoked=time.time()))
        self.forget()

    def authenticate(self, token: str | None, kind: str = "api") -> User | None:
        """The user a token belongs to; None without a token; 401 saying why it is refused.
        API tokens are accepted only as API tokens, page sessions only as sessions."""
        if token is None:
            return None
        key = (token_hash(token), kind)
        known = self._known.get(key)
        if known is not None and known[1] > time.time():
            return known[0]
        if not token.startswith(PREFIX):
            raise DenError(401, "token_unknown", "this is not a token of an rh store (they "
                                                 "start with 'rhd_'); log in with rh login")
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(db.tokens, db.users.c.email, db.users.c.admin).join(
                db.users, db.users.c.name == db.tokens.c.user_name).where(
                db.tokens.c.hash == token_hash(token),
                db.tokens.c.kind == kind)).mappings().first()
            if row is None:
                raise DenError(401, "token_unknown", "this token is not known to this store: "
                                                     "check it, or ask for a new one")
            now = time.time()
            if row["revoked"] is not None:
                raise DenError(401, "token_revoked", f"this token ({row['name']}, id "
                               f"{row['id']}) was revoked at {when(row['revoked'])}; log in "
                               f"with a new one")
            if row["expires"] is not None and row["expires"] <= now:
                raise DenError(401, "token_expired", f"this token ({row['name']}, id "
                               f"{row['id']}) expired at {when(row['expires'])}; create a new "
                               f"one (rh den token create) or rotate it")
            groups = self.groups_of(conn, row["user_name"])
        if row["last_used"] is None or now - row["last_used"] > TOUCH_SECONDS:
            # Written aside, one at a time: checking a token never waits for the writer.
            self._toucher.submit(self._touch, row["id"], now)
        user = User(row["user_name"], row["email"], bool(row["admin"]), groups, row["id"],
                    row["csrf"])
        if len(self._known) > 10_000:
            self._known.clear()
        until = now + REMEMBER_SECONDS
        self._known[key] = (user, min(until, row["expires"]) if row["expires"] else until)
        return user
