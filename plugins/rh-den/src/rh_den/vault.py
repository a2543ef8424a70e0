"""Secret values kept by the store for their user (the ``den`` secret backend's server side).

Each value is encrypted with the store's key (Fernet: AES-128-CBC with an HMAC, from the
``cryptography`` package) before it reaches the database, so a copy of the database alone
reveals none. The key is a file: ``<db>.secret-key`` beside a SQLite database (made, mode 0600,
on the first ``rh den serve``), or the one ``--secret-key-file`` names (required with
PostgreSQL). A store without a key keeps no secrets and says so. Values are only ever their
user's: no share, no admin reads them.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken

from rh_den.accounts import User, when
from rh_den.errors import DenError, bad

KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,199}$")
MAX_VALUE = 1 << 20

secrets_table = sa.Table(
    "secret_values", sa.MetaData(),
    sa.Column("user_name", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("ciphertext", sa.Text, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
)


def key_file_for(db_path: Path | None, given: str | None) -> Path | None:
    """The key file a store uses: the one given, else ``<db>.secret-key`` beside SQLite."""
    if given:
        return Path(given).expanduser()
    return db_path.with_name(db_path.name + ".secret-key") if db_path else None


def load_key(path: Path | None, create: bool) -> Fernet | None:
    """The store's key from ``path`` (made when ``create`` and it is missing), or None."""
    if path is None:
        return None
    if not path.exists():
        if not create:
            return None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
    try:
        return Fernet(path.read_bytes().strip())
    except (ValueError, OSError) as e:
        raise DenError(400, "bad_secret_key", f"the secret key file {path} is not a key made by "
                       f"rh den serve ({type(e).__name__}); give the right file") from None


class Vault:
    """The secret values of one store."""

    def __init__(self, engine: sa.Engine, writer, fernet: Fernet | None):
        self.engine, self._write, self._fernet = engine, writer, fernet
        secrets_table.create(engine, checkfirst=True)

    def _need_key(self) -> Fernet:
        if self._fernet is None:
            raise DenError(503, "no_secret_key", "this store keeps no secrets: its operator starts "
                           "it with --secret-key-file (PostgreSQL), or it runs on SQLite")
        return self._fernet

    @staticmethod
    def _check(key: str) -> str:
        if not isinstance(key, str) or not KEY.match(key) or ".." in key.split("/"):
            raise bad(f"bad secret key {key!r:.80}: letters, digits, '_', '-', '.', '/'")
        return key

    def get(self, user: User, key: str) -> dict:
        key, fernet = self._check(key), self._need_key()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(secrets_table).where(
                secrets_table.c.user_name == user.name, secrets_table.c.key == key)).first()
        if row is None:
            raise DenError(404, "not_found", f"you keep no secret value under {key!r} here")
        try:
            value = fernet.decrypt(row.ciphertext.encode()).decode()
        except InvalidToken:
            raise DenError(500, "bad_secret_key", "a secret value cannot be decrypted with this "
                           "store's key: was the store started with another key file?") from None
        return {"key": key, "value": value, "updated": when(row.updated)}

    def put(self, user: User, key: str, value: str) -> dict:
        key, fernet = self._check(key), self._need_key()
        if len(value.encode()) > MAX_VALUE:
            raise DenError(413, "too_large", "a secret value may be at most 1 MiB")
        sealed = fernet.encrypt(value.encode()).decode()
        now = time.time()
        with self._write() as conn:
            where = (secrets_table.c.user_name == user.name, secrets_table.c.key == key)
            done = conn.execute(secrets_table.update().where(*where).values(
                ciphertext=sealed, updated=now))
            if done.rowcount == 0:
                conn.execute(secrets_table.insert().values(user_name=user.name, key=key,
                                                           ciphertext=sealed, updated=now))
        return {"key": key, "updated": when(now)}

    def delete(self, user: User, key: str) -> dict:
        key = self._check(key)
        with self._write() as conn:
            done = conn.execute(secrets_table.delete().where(
                secrets_table.c.user_name == user.name, secrets_table.c.key == key))
        return {"key": key, "deleted": done.rowcount > 0}

    def keys(self, user: User, prefix: str = "") -> list[str]:
        self._need_key()
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(secrets_table.c.key).where(
                secrets_table.c.user_name == user.name).order_by(secrets_table.c.key)).all()
        return [k for (k,) in rows if k.startswith(prefix)]
