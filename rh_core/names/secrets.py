"""Secrets by reference: configs hold a backend's name and a key, values live in the backend.

Backends are plugins (``rh_secret_backends``); the core's own is the keyring
(:mod:`rh_core.builtin.keyring`), rh-vault adds ``vault``. The backend of new secrets is the
``secret_backend`` key of the user's config (``keyring`` unless set). A secret ``NAME``
(``rh.secret``) is kept under the key ``secrets/NAME``.
"""

from __future__ import annotations

from rh_core import user_config
from rh_core.plugin.interfaces import SecretBackend
from rh_core.plugin.registry import registry

#: Where the values of ``rh.secret(NAME)`` are kept in their backend.
PREFIX = "secrets/"


def secret_backend(name: str | None = None) -> SecretBackend:
    """An instance of the installed secret backend ``name`` (default: the ``secret_backend`` of
    the user's config)."""
    return registry().secret_backend(name or user_config.value("secret_backend"))()


def backend_key(secret_name: str) -> str:
    """The key the values of the secret ``secret_name`` are kept under in its backend."""
    return PREFIX + secret_name


def read_values(backend: str, secret_name: str) -> dict[str, str] | None:
    """The values of a saved secret, or None when its backend has none."""
    return secret_backend(backend).get_values(backend_key(secret_name))


def write_values(backend: str, secret_name: str, values: dict[str, str]) -> None:
    secret_backend(backend).set_values(backend_key(secret_name), values)


def delete_values(backend: str, secret_name: str) -> None:
    secret_backend(backend).delete_values(backend_key(secret_name))


def listed(backend: str) -> list[str] | None:
    """The names of the secrets a backend holds (None when it cannot list)."""
    keys = secret_backend(backend).list(PREFIX)
    return None if keys is None else sorted(k.strip("/") for k in keys)
