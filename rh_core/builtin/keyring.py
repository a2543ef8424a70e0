"""The built-in secret backend: the system keyring (the ``keyring`` package). On a machine without
a desktop keyring, keyring picks keyrings.alt's file backend: a file only its user may read
(mode 0600, checked after every write), its folder 0700. Registered through
``rh_secret_backends``."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from rh_core.errors import SecretBackendError
from rh_core.plugin.hookspecs import hookimpl
from rh_core.plugin.interfaces import SecretBackend

SERVICE = "rh"

ELSEWHERE = ("or keep secrets in Vault instead: pip install rh-vault, then "
             "rh config set secret_backend vault")


class KeyringBackend(SecretBackend):
    """Secrets in the user's keyring (a file backend on headless machines)."""

    name = "keyring"

    def _keyring(self):
        try:  # keyring is slow to import (it looks up its backends): loaded when a secret is used
            import keyring
        except ImportError:
            raise SecretBackendError(
                "the keyring secret backend needs the keyring package (a dependency of rh-core "
                f"that is missing here): pip install 'rh-core[secrets]', {ELSEWHERE}") from None
        return keyring

    @contextlib.contextmanager
    def _using(self, doing: str) -> Iterator:
        """The keyring, with its failures turned into errors that say what to do."""
        kr = self._keyring()
        active = kr.get_keyring()
        if type(active).__module__ == "keyring.backends.fail":
            raise SecretBackendError(
                f"cannot {doing}: no keyring is available on this machine (keyring found no "
                f"backend it can use). Install keyrings.alt (a file backend for machines without "
                f"a desktop keyring), or name one in PYTHON_KEYRING_BACKEND, {ELSEWHERE}")
        try:
            yield kr
        except kr.errors.KeyringLocked:
            raise SecretBackendError(
                f"cannot {doing}: the keyring ({type(active).__name__}) is locked; unlock it "
                f"(log in to the desktop session, or unlock it with its tool) and try again, "
                f"{ELSEWHERE}") from None
        except (kr.errors.KeyringError, RuntimeError) as e:
            raise SecretBackendError(
                f"cannot {doing}: the keyring ({type(active).__name__}) failed with "
                f"{type(e).__name__}; check that it works (`keyring --list-backends`), "
                f"{ELSEWHERE}") from None

    def get(self, key: str) -> str | None:
        with self._using(f"read {key!r} from the keyring") as kr:
            return kr.get_password(SERVICE, key)

    def set(self, key: str, value: str) -> None:
        with self._using(f"write {key!r} to the keyring") as kr:
            files = _files(kr.get_keyring())
            for path in files:
                if not path.parent.exists():
                    path.parent.mkdir(parents=True, mode=0o700)
            kr.set_password(SERVICE, key, value)
            for path in files:
                _private(path)

    def delete(self, key: str) -> None:
        with self._using(f"delete {key!r} from the keyring") as kr:
            try:
                kr.delete_password(SERVICE, key)
            except kr.errors.PasswordDeleteError:
                pass


def _files(active) -> list[Path]:
    """The files of keyrings.alt's file backends among the active keyring (or its chain)."""
    backends = getattr(active, "backends", None) or [active]
    return [Path(b.file_path) for b in backends if isinstance(getattr(b, "file_path", None), str)]


def _private(path: Path) -> None:
    """Make the keyring's file readable by its owner only (0600), whoever made it first."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, 0o600)


@hookimpl
def rh_secret_backends(register):
    register(KeyringBackend)
