"""``VaultBackend``: secrets in a KV version 2 secrets engine of HashiCorp Vault or OpenBao,
through hvac.

Where and how, from the environment first and then the user's rh config
(``~/.rh/config.yaml``, keys ``vault_*``):

- address: ``VAULT_ADDR``, else ``vault_addr``; namespace: ``VAULT_NAMESPACE``, else
  ``vault_namespace``;
- the engine's mount point ``vault_mount`` (``secret``) and the folder under it,
  ``vault_path_prefix`` (``rh``): the secret ``openai`` is ``secret/data/rh/secrets/openai``;
- login: AppRole when a secret id is given (``VAULT_SECRET_ID``, with ``VAULT_ROLE_ID`` or
  ``vault_role_id``; the method's mount ``vault_approle_mount``, ``approle``), else the token
  ``VAULT_TOKEN``, else the one ``vault login`` left in ``~/.vault-token``.

A secret's values are one KV entry (its data is the values), written in one request, so a
failed write leaves nothing half done. Every failure is a ``SecretBackendError`` that says what
to do; none carries a value.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Iterator

from rh_core import user_config
from rh_core.errors import SecretBackendError
from rh_core.plugin import SecretBackend


@functools.lru_cache(maxsize=8)
def _client(url: str, namespace: str | None, token: str | None, role_id: str | None,
            secret_id: str | None, approle_mount: str):
    """An hvac client, logged in; kept per settings so each secret costs one request."""
    # hvac (with requests) costs tens of ms to import: only when a Vault secret is used.
    import hvac

    client = hvac.Client(url=url, namespace=namespace, token=None if secret_id else token)
    if secret_id:
        client.auth.approle.login(role_id=role_id, secret_id=secret_id, mount_point=approle_mount)
    return client


class VaultBackend(SecretBackend):
    """Secret values in Vault's (or OpenBao's) KV version 2 engine."""

    name = "vault"

    def __init__(self):
        cfg = user_config.load()
        self.url = os.environ.get("VAULT_ADDR") or cfg.vault_addr
        self.namespace = os.environ.get("VAULT_NAMESPACE") or cfg.vault_namespace
        self.mount = cfg.vault_mount
        self.prefix = cfg.vault_path_prefix.strip("/")
        self.role_id = os.environ.get("VAULT_ROLE_ID") or cfg.vault_role_id
        self.approle_mount = cfg.vault_approle_mount

    # ------------------------------------------------------------------ connection

    def _settings(self) -> tuple:
        if not self.url:
            raise SecretBackendError(
                "the vault secret backend needs Vault's address: set VAULT_ADDR, or "
                "rh config set vault_addr https://vault.example.com:8200")
        secret_id = os.environ.get("VAULT_SECRET_ID")
        token = os.environ.get("VAULT_TOKEN")
        if not token and not secret_id:
            token_file = Path.home() / ".vault-token"
            token = token_file.read_text().strip() if token_file.is_file() else None
        if secret_id and not self.role_id:
            raise SecretBackendError("VAULT_SECRET_ID is set but no AppRole role id: set "
                                     "VAULT_ROLE_ID, or rh config set vault_role_id ROLE_ID")
        if not token and not secret_id:
            raise SecretBackendError(
                f"no Vault token for {self.url}: set VAULT_TOKEN or log in with `vault login` "
                f"(it keeps the token in ~/.vault-token); or use AppRole: VAULT_ROLE_ID (or "
                f"rh config set vault_role_id ...) and VAULT_SECRET_ID")
        return self.url, self.namespace, token, self.role_id, secret_id, self.approle_mount

    @contextlib.contextmanager
    def _vault(self, doing: str) -> Iterator:
        """The logged-in client, with Vault's answers turned into errors that say what to do."""
        # hvac: see _client (import time).
        import hvac.exceptions as vault_errors
        import requests

        settings = self._settings()
        where = f"Vault at {self.url}" + (f" (namespace {self.namespace})" if self.namespace else "")
        try:
            try:
                client = _client(*settings)
            except vault_errors.InvalidRequest as e:  # AppRole: a wrong role or secret id
                raise SecretBackendError(
                    f"cannot {doing}: {where} refused the AppRole login ({_first(e)}); check the "
                    f"role id (VAULT_ROLE_ID or vault_role_id) and VAULT_SECRET_ID (secret ids "
                    f"can expire or be used up: make a new one)") from None
            yield client
        except vault_errors.VaultDown:
            raise SecretBackendError(f"cannot {doing}: {where} is sealed; unseal it (`vault "
                                     f"operator unseal`) and try again") from None
        except (vault_errors.Forbidden, vault_errors.Unauthorized):
            _client.cache_clear()  # an AppRole login may have expired: log in again next time
            who = "the AppRole login" if settings[4] else "the token"
            if _token_valid(settings):
                why = (f"{who}'s policies do not allow this path; ask for a policy with create, "
                       f"read, update, delete and list on {self.mount}/data/{self.prefix}/* and "
                       f"{self.mount}/metadata/{self.prefix}/*")
            else:
                why = (f"{who} is not valid here (expired, revoked, or made for another Vault or "
                       f"namespace); log in again (vault login, or a new VAULT_TOKEN)")
            raise SecretBackendError(f"cannot {doing}: {where} refused it (permission denied): "
                                     f"{why}") from None
        except vault_errors.InvalidPath as e:
            if any("no handler for route" in str(m) for m in (e.errors or [])):
                raise SecretBackendError(
                    f"cannot {doing}: {where} has no secrets engine at the mount {self.mount!r}; "
                    f"set the mount of your KV version 2 engine (rh config set vault_mount NAME), "
                    f"or enable one: vault secrets enable -path={self.mount} kv-v2") from None
            raise SecretBackendError(f"cannot {doing}: {where} answered not found "
                                     f"({_first(e)})") from None
        except vault_errors.VaultError as e:
            raise SecretBackendError(f"cannot {doing}: {where} answered {type(e).__name__} "
                                     f"({_first(e)}); check the server's state") from None
        except requests.exceptions.RequestException as e:
            raise SecretBackendError(f"cannot {doing}: {where} cannot be reached "
                                     f"({type(e).__name__}); check VAULT_ADDR and that the "
                                     f"server runs") from None

    def _path(self, key: str) -> str:
        return f"{self.prefix}/{key}".strip("/")

    # ------------------------------------------------------------------ values

    def get_values(self, key: str) -> dict[str, str] | None:
        # hvac: see _client (import time).
        import hvac.exceptions as vault_errors

        with self._vault(f"read {key!r} from Vault") as client:
            try:
                answer = client.secrets.kv.v2.read_secret_version(
                    path=self._path(key), mount_point=self.mount, raise_on_deleted_version=True)
            except vault_errors.InvalidPath as e:
                if e.errors:  # a mount that is not there, not a missing secret
                    raise
                return None
        return dict(answer["data"]["data"])

    def set_values(self, key: str, values: dict[str, str]) -> None:
        with self._vault(f"write {key!r} to Vault") as client:
            client.secrets.kv.v2.create_or_update_secret(path=self._path(key), secret=values,
                                                         mount_point=self.mount)

    def delete_values(self, key: str) -> None:
        # hvac: see _client (import time).
        import hvac.exceptions as vault_errors

        with self._vault(f"delete {key!r} from Vault") as client:
            try:
                client.secrets.kv.v2.delete_metadata_and_all_versions(path=self._path(key),
                                                                      mount_point=self.mount)
            except vault_errors.InvalidPath as e:
                if e.errors:
                    raise

    def list(self, prefix: str) -> list[str]:
        # hvac: see _client (import time).
        import hvac.exceptions as vault_errors

        with self._vault(f"list {prefix!r} in Vault") as client:
            try:
                answer = client.secrets.kv.v2.list_secrets(path=self._path(prefix),
                                                           mount_point=self.mount)
            except vault_errors.InvalidPath as e:
                if e.errors:
                    raise
                return []
        return sorted(k for k in answer["data"]["keys"] if not k.endswith("/"))

    # One text value per key, for callers of the plain interface (``rh.secret_backend``).

    def get(self, key: str) -> str | None:
        return (self.get_values(key) or {}).get("value")

    def set(self, key: str, value: str) -> None:
        self.set_values(key, {"value": value})

    def delete(self, key: str) -> None:
        self.delete_values(key)


def _token_valid(settings: tuple) -> bool:
    """Whether the login still works (``token/lookup-self``): a refusal is then the policies'."""
    try:
        _client(*settings).auth.token.lookup_self()
        return True
    except Exception:  # any refusal or failure: the login is what does not work
        _client.cache_clear()
        return False


def _first(err: Exception) -> str:
    errors = getattr(err, "errors", None) or []
    text = str(errors[0]) if errors else type(err).__name__
    return text[:200]
