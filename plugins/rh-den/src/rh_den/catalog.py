"""Saved resources: versions, listing, sharing and the access rules.

Access to ``@/<owner>/...``: the owner's folder is theirs to write; a group's folder is its
members'; shares give a user or a group read or write; ``public`` and ``unlisted`` resources
are read by anyone (unlisted ones only by exact name). A resource the caller may not read is
answered as not found, so that its existence does not leak. Every save that changes the config
is the next integer version; a save that started from an older version is refused (409).
"""

from __future__ import annotations

import json
import re
import time

import sqlalchemy as sa

from rh_den import db
from rh_den.accounts import Accounts, User, when
from rh_den.errors import DenError, bad, not_found
from rh_den.reads import NoReads

PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
LEVELS = {"read": 1, "write": 2}
VISIBILITIES = ("private", "unlisted", "public")
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def check_path(path: str, resource: bool = True) -> str:
    """``alice/proj/summer`` as given after ``@/``; a resource needs a folder and a name."""
    parts = path.strip("/").split("/") if isinstance(path, str) else []
    if not parts or not all(PART.match(p) for p in parts) or (resource and len(parts) < 2):
        raise bad(f"bad name @/{path!s:.200}: give @/<user or group>/<name>, each part letters, "
                  f"digits, '_', '-' or '.', not starting with '.' or '-'")
    return "/".join(parts)


def level_of(name: str) -> int:
    if name not in LEVELS:
        raise bad(f"access_level must be 'read' or 'write', got {name!r:.40}")
    return LEVELS[name]


def canonical(config) -> str:
    if not isinstance(config, dict):
        raise bad("config must be a JSON object (a resource's config)")
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    if len(text) > MAX_CONFIG_BYTES:
        raise DenError(413, "too_large", f"a config may be at most {MAX_CONFIG_BYTES >> 20} MiB "
                                         f"of JSON; this one is {len(text) >> 20} MiB")
    return text


class Catalog:
    """The resources of one store."""

    def __init__(self, engine: sa.Engine, writer, accounts: Accounts, reads=None):
        self.engine, self._write, self.accounts = engine, writer, accounts
        self.reads = reads or NoReads()

    # ------------------------------------------------------------------ access

    def _level(self, conn, user: User | None, path: str, row=None, enough: int = 2,
               shares: dict | None = None) -> int:
        """0 (none), 1 (read) or 2 (write) on ``path``; ``row`` is its resources row, if any,
        and ``shares`` its shares (:meth:`_shares`), read when needed and not given. Stops
        asking once the level reaches ``enough``."""
        owner = path.split("/", 1)[0]
        level = 0
        if user is not None and (owner == user.name or owner in user.groups):
            return 2
        if row is not None and row["visibility"] in ("public", "unlisted"):
            level = 1
            if enough <= 1:
                return 1
        if user is not None and row is not None:
            if shares is None:
                shares = self._shares(conn, path)
            for who in (user.name, *user.groups):
                level = max(level, shares.get(who, 0))
        return level

    @staticmethod
    def _shares(conn, path: str) -> dict[str, int]:
        """``{user or group: 1 (read) or 2 (write)}`` on ``path``."""
        return {who: LEVELS[access] for who, access in conn.execute(sa.select(
            db.shares.c.principal, db.shares.c.access).where(db.shares.c.path == path))}

    @staticmethod
    def _row(conn, path: str):
        return conn.execute(sa.select(db.resources).where(db.resources.c.path == path)).mappings().first()

    def _need(self, conn, user: User | None, path: str, needed: int):
        """The resource's row if the user has ``needed`` access; 404 below read, 403 below
        write (a reader knows it exists), 401 for writing without a token."""
        row = self._row(conn, path)
        level = self._level(conn, user, path, row, needed)
        if row is None or level == 0:
            raise not_found(path)
        if level < needed:
            if user is None:
                raise DenError(401, "auth", f"changing @/{path} needs a token: rh login")
            raise DenError(403, "forbidden", f"{user.name} may read @/{path} but not change it; "
                           f"ask {path.split('/')[0]} to share it with access_level='write'")
        return row

    # ------------------------------------------------------------------ reading

    def get(self, user: User | None, path: str, version: int | None = None,
            raw: bool = False) -> dict:
        """The resource at ``version`` (None: the latest). With ``raw`` its config stays the
        JSON text it is stored as (the API answers it without parsing it again)."""
        # The hottest read of all (every rh.load): kept until the database changes.
        kept = self.reads.current()
        found = kept.get((path, version))
        if found is None:
            name = check_path(path)
            with self.engine.connect() as conn:  # the resource and the version in one query
                if version is None:
                    row = conn.execute(_LATEST, {"path": name}).mappings().first()
                else:
                    row = conn.execute(_VERSION, {"path": name, "version": version}).mappings(
                    ).first()
                found = (name, row and dict(row), row and self._shares(conn, name))
            self.reads.keep(kept, (path, version), found, len(row["config"] or "") if row else 0)
        path, row, shares = found
        if row is None or self._level(None, user, path, row, 1, shares) == 0:
            raise not_found(path)
        if row["found"] is None:
            raise DenError(404, "no_version", f"@/{path} has no version {version}; its "
                                              f"versions are 1 to {row['version']}")
        return {"name": f"@/{path}", "config": RawJSON(row["config"]) if raw else
                json.loads(row["config"]), "version": row["found"], "latest": row["version"],
                "resource_type": row["resource_type"], "visibility": row["visibility"],
                "author": row["author"], "timestamp": when(row["timestamp"])}

    def history(self, user: User | None, path: str) -> list[dict]:
        path = check_path(path)
        with self.engine.connect() as conn:
            self._need(conn, user, path, 1)
            rows = conn.execute(sa.select(db.versions.c.version, db.versions.c.author,
                                          db.versions.c.timestamp).where(
                db.versions.c.path == path).order_by(db.versions.c.version.desc())).all()
        return [{"version": v, "timestamp": when(t), "author": a} for v, a, t in rows]

    def listing(self, user: User | None, folder: str) -> dict:
        """Resources directly in ``folder`` the user may read (unlisted ones only when shared
        with them or theirs) and the subfolders holding any."""
        folder = check_path(folder, resource=False)
        names, folders = [], set()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(db.resources).where(sa.or_(
                db.resources.c.folder == folder,
                db.resources.c.folder.like(_like_prefix(folder), escape="\\"))).order_by(
                db.resources.c.path)).mappings().all()
            for row in rows:
                if self._level(conn, user, row["path"], row, 1) == 0:
                    continue
                if row["visibility"] == "unlisted" and not (user is not None and (
                        self._level(conn, user, row["path"], None) > 0 or
                        self._shared(conn, user, row["path"]))):
                    continue  # unlisted: loaded by exact name, listed only to its people
                if row["folder"] == folder:
                    names.append({"name": f"@/{row['path']}", "resource_type": row["resource_type"],
                                  "version": row["version"], "visibility": row["visibility"]})
                else:
                    folders.add(f"@/{folder}/{row['folder'][len(folder) + 1:].split('/')[0]}/")
        return {"resources": names, "folders": sorted(folders)}

    @staticmethod
    def _shared(conn, user: User, path: str) -> bool:
        return conn.execute(sa.select(db.shares.c.principal).where(
            db.shares.c.path == path,
            db.shares.c.principal.in_((user.name, *user.groups)))).first() is not None

    def shared_with(self, user: User) -> list[dict]:
        """Resources others shared with the user or their groups (the page's first list)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(db.resources, db.shares.c.access).join(
                db.shares, db.shares.c.path == db.resources.c.path).where(
                db.shares.c.principal.in_((user.name, *user.groups))).order_by(
                db.resources.c.path)).mappings().all()
        seen: dict[str, dict] = {}
        for r in rows:
            entry = seen.setdefault(r["path"], {"name": f"@/{r['path']}", "access": "read",
                                                "resource_type": r["resource_type"]})
            if r["access"] == "write":
                entry["access"] = "write"
        return list(seen.values())

    def shares(self, user: User | None, path: str) -> dict:
        path = check_path(path)
        with self.engine.connect() as conn:
            row = self._need(conn, user, path, 1)
            rows = conn.execute(sa.select(db.shares.c.principal, db.shares.c.access).where(
                db.shares.c.path == path).order_by(db.shares.c.principal)).all()
            listed = [{"principal": p, "kind": "group" if self.accounts.is_group(conn, p) else "user",
                       "access_level": a} for p, a in rows]
        return {"name": f"@/{path}", "visibility": row["visibility"], "shares": listed}

    # ------------------------------------------------------------------ writing

    def save(self, user: User, path: str, config: dict, base_version: int | None,
             cluster: str | None = None) -> dict:
        """Save ``config`` as the next version (or create it as version 1). ``base_version``:
        the version the writer started from (None: written afresh, not loaded)."""
        path = check_path(path)
        text = canonical(config)
        rtype = config.get("resource_type")
        if not isinstance(rtype, str) or not rtype:
            raise bad("config must have a resource_type")
        if base_version is not None and (isinstance(base_version, bool) or
                                         not isinstance(base_version, int)):
            raise bad(f"base_version must be a whole number, got {base_version!r:.40}")
        cluster = check_path(cluster) if cluster else None
        served = config.get("server_name") if isinstance(config.get("server_name"), str) else None
        now = time.time()
        with self._write() as conn:
            row = self._row(conn, path)
            if row is None:
                self._need_folder(conn, user, path)
                if base_version is not None:
                    raise DenError(409, "conflict", f"@/{path} was deleted after you loaded "
                                   f"version {base_version}; load it again or save it afresh",
                                   base_version=base_version, latest=None)
                conn.execute(db.resources.insert().values(
                    path=path, owner=path.split("/")[0], folder=path.rsplit("/", 1)[0],
                    resource_type=rtype, visibility="private", version=1, cluster=cluster,
                    served_as=served, created=now, updated=now))
                version = 1
            else:
                self._need(conn, user, path, 2)
                latest = row["version"]
                if base_version is not None and base_version != latest:
                    raise DenError(409, "conflict", f"@/{path} is at version {latest}, newer than "
                                   f"version {base_version} you started from; load version "
                                   f"{latest}, apply your change, and save again",
                                   base_version=base_version, latest=latest)
                current = conn.execute(sa.select(db.versions.c.config).where(
                    db.versions.c.path == path, db.versions.c.version == latest)).scalar()
                if current == text:
                    return {"name": f"@/{path}", "version": latest, "changed": False}
                version = latest + 1
                done = conn.execute(db.resources.update().where(
                    db.resources.c.path == path, db.resources.c.version == latest).values(
                    version=version, resource_type=rtype, updated=now,
                    cluster=cluster or row["cluster"], served_as=served or row["served_as"]))
                if done.rowcount != 1:  # another writer got in first (PostgreSQL)
                    raise DenError(409, "conflict", f"@/{path} changed while you saved; load "
                                   f"it again", base_version=latest, latest=None)
            conn.execute(db.versions.insert().values(path=path, version=version, config=text,
                                                     author=user.name, timestamp=now))
        return {"name": f"@/{path}", "version": version, "changed": True}

    def _need_folder(self, conn, user: User, path: str) -> None:
        owner = path.split("/", 1)[0]
        if owner == user.name or owner in user.groups:
            return
        if not (conn.execute(sa.select(db.users.c.name).where(db.users.c.name == owner)).first()
                or self.accounts.is_group(conn, owner)):
            raise DenError(404, "no_folder", f"no user or group {owner!r} in this store: a name "
                           f"starts with its folder's owner, e.g. @/{user.name}/...")
        raise DenError(403, "forbidden", f"{user.name} may not save into @/{owner}: save under "
                       f"@/{user.name}/... or a group you belong to")

    def delete(self, user: User, path: str) -> dict:
        path = check_path(path)
        with self._write() as conn:
            self._need(conn, user, path, 2)
            for table in (db.shares, db.versions, db.resources):
                conn.execute(table.delete().where(table.c.path == path))
        return {"name": f"@/{path}", "deleted": True}

    def share(self, user: User, path: str, principals: list[str], access_level: str = "read",
              visibility: str | None = None) -> dict:
        path = check_path(path)
        level_of(access_level)
        if visibility is not None and visibility not in VISIBILITIES:
            raise bad(f"visibility must be one of {', '.join(VISIBILITIES)}, got {visibility!r:.40}")
        with self._write() as conn:
            self._need(conn, user, path, 2)
            names = [self.accounts.principal(conn, p) for p in principals]
            for name in dict.fromkeys(names):
                conn.execute(db.shares.delete().where(db.shares.c.path == path,
                                                      db.shares.c.principal == name))
                conn.execute(db.shares.insert().values(path=path, principal=name,
                                                       access=access_level))
            if visibility is not None:
                conn.execute(db.resources.update().where(db.resources.c.path == path).values(
                    visibility=visibility))
        return self.shares(user, path)

    def revoke(self, user: User, path: str, principals: list[str]) -> dict:
        path = check_path(path)
        with self._write() as conn:
            self._need(conn, user, path, 2)
            names = [self.accounts.principal(conn, p) for p in principals]
            conn.execute(db.shares.delete().where(db.shares.c.path == path,
                                                  db.shares.c.principal.in_(names)))
        return self.shares(user, path)

    # ------------------------------------------------------------------ clusters

    def authorize(self, user: User, cluster: str, served_as: str, needed: str) -> bool:
        """Whether ``user`` may use ``served_as`` on the cluster ``@/<cluster>`` at ``needed``
        level: the access they have on the cluster's name, or (for calls) a share of a
        resource saved as running there under that name."""
        cluster = check_path(cluster)
        want = level_of(needed)
        with self.engine.connect() as conn:
            if self._level(conn, user, cluster, self._row(conn, cluster), want) >= want:
                return True
            if want > 1 or served_as == "*":
                return False
            rows = conn.execute(sa.select(db.resources).where(
                db.resources.c.cluster == cluster,
                db.resources.c.served_as == served_as)).mappings().all()
            return any(self._level(conn, user, r["path"], r, 1) >= 1 for r in rows)


class RawJSON(str):
    """JSON text to put into an answer as it is (see :func:`rh_den.api.dumps`)."""


def _get_statement(version):
    r, v = db.resources, db.versions
    return sa.select(r, v.c.config, v.c.version.label("found"), v.c.author,
                     v.c.timestamp).select_from(r.outerjoin(v, sa.and_(
                         v.c.path == r.c.path, v.c.version == version))).where(
        r.c.path == sa.bindparam("path"))


# Built once: making a statement costs more than running it on SQLite.
_LATEST = _get_statement(db.resources.c.version)
_VERSION = _get_statement(sa.bindparam("version"))


def _like_prefix(folder: str) -> str:
    return folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
