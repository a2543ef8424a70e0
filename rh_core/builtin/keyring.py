"""The built-in secret backend: the system keyring (``pip install 'rh-core[secrets]'``; on a
headless machine keyrings.alt's file backend). Registered through ``rh_secret_backends``."""

from __future__ import annotations

from rh_core.errors import ConfigError
from rh_core.plugin.hookspecs import hookimpl
from rh_core.plugin.interfaces import SecretBackend

SERVICE = "rh"


class KeyringBackend(SecretBackend):
    """Secrets in the user's keyring (``keyring`` package; a file backend on headless machines)."""

    name = "keyring"

    def _keyring(self):
        try:  # keyring is an optional extra and slow to import: loaded when a secret is used
            import keyring
        except ImportError:
            raise ConfigError(
                "the keyring secret backend needs the keyring package: "
                "pip install 'rh-core[secrets]'"
            ) from None
        return keyring

    def get(self, key: str) -> str | None:
        return self._keyring().get_password(SERVICE, key)

    def set(self, key: str, value: str) -> None:
        self._keyring().set_password(SERVICE, key, value)

    def delete(self, key: str) -> None:
        kr = self._keyring()
        try:
            kr.delete_password(SERVICE, key)
        except kr.errors.PasswordDeleteError:
            pass


@hookimpl
def rh_secret_backends(register):
    register(KeyringBackend)
