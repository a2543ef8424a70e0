"""rh-vault: the ``vault`` secret backend, secrets in HashiCorp Vault or OpenBao (KV version 2).

``rh.secret(name="openai", values={...}, backend="vault").save()``, or every new secret with
``rh config set secret_backend vault``. See the README for the settings and the logins.
"""

from __future__ import annotations

from rh_core import hookimpl
from rh_vault.backend import VaultBackend

__all__ = ["VaultBackend"]


@hookimpl
def rh_secret_backends(register):
    register(VaultBackend)
