"""Tokens the cluster owner gives to other users, and the built-in check of them.

The owner mints a token for a user with an access level per resource (``*`` for all) and,
optionally, an expiry time. Only the token's SHA-256 is stored, in
``$RH_HOME/server/<cluster>/tokens.json`` (mode 0600), so a restart keeps every grant and a copy
of the file reveals no token. The check is the built-in implementation of the
``rh_server_auth_check`` hook, registered last, so a plugin (a shared user service, say) decides
first.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

from rh_core.paths import write_private
from rh_core.plugin import AccessLevel, hookimpl
from rh_core.transport.tokens import new_grant_token, token_hash


class TokenStore:
    """The grants of one cluster, by id, saved after every change."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.entries: dict[str, dict] = json.loads(path.read_text())
        except FileNotFoundError:
            self.entries = {}
        self._by_hash = {e["hash"]: e for e in self.entries.values()}

    def _save(self) -> None:
        write_private(self.path, json.dumps(self.entries, indent=1))
        self._by_hash = {e["hash"]: e for e in self.entries.values()}

    def create(self, user: str, grants: dict[str, str],
               expires: float | None = None) -> tuple[dict, str]:
        """A new token for ``user``: its public entry and the token (shown once)."""
        token = new_grant_token()
        entry = {"id": secrets.token_hex(6), "user": user, "grants": grants,
                 "hash": token_hash(token), "created": time.time(), "expires": expires}
        self.entries[entry["id"]] = entry
        self._save()
        return self.public(entry), token

    def revoke(self, id_or_user: str) -> list[str]:
        if id_or_user in self.entries:  # an id names one token, even if a user has that name
            gone = [id_or_user]
        else:
            gone = [i for i, e in self.entries.items() if e["user"] == id_or_user]
        for i in gone:
            del self.entries[i]
        if gone:
            self._save()
        return gone

    def lookup(self, token: str) -> dict | None:
        """The entry of ``token`` (expired or not), or None."""
        return self._by_hash.get(token_hash(token))

    @staticmethod
    def expired(entry: dict, now: float | None = None) -> bool:
        expires = entry.get("expires")
        return expires is not None and (now or time.time()) >= expires

    @staticmethod
    def public(entry: dict) -> dict:
        return {k: v for k, v in entry.items() if k != "hash"}

    def list(self) -> list[dict]:
        now = time.time()
        return [{**self.public(e), "expired": self.expired(e, now)} for e in self.entries.values()]


class GrantsAuth:
    """Allows a granted, unexpired token the access its grant gives on a resource (``*``: every
    one). An expired or unknown token is not this check's to judge (None)."""

    def __init__(self, store: TokenStore):
        self.store = store

    @hookimpl(trylast=True)
    def rh_server_auth_check(self, token, resource, access, server):
        if token is None:
            return None
        entry = self.store.lookup(token)
        if entry is None or self.store.expired(entry):
            return None
        level = entry["grants"].get(resource) or entry["grants"].get("*")
        if level is None:
            return False
        return AccessLevel(level).allows(access)
