"""Secrets: credentials kept in a secret backend, referred to by name, sent to clusters.

A saved secret is two halves: its values in a backend (the keyring, Vault...) under
``secrets/<name>``, and a reference (name, provider, backend, keys; never a value) saved as a
config at ``~/secrets/<name>``. ``save()`` writes both or neither. ``to(cluster)`` sends the
values in a request body (``PUT /secrets/{name}``): the server writes the provider's files in
its user's home and gives env vars to an env's workers; a value never goes on a command line,
into a config, a log, a repr or an error message.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any, ClassVar

import attrs

from rh_core import secret_files, user_config
from rh_core.errors import ConfigError, ConnectionFailedError, ResourceNotFoundError, SecretNotFoundError
from rh_core.names import resolve as rns
from rh_core.names import secrets as backends
from rh_core.resources.base import Resource
from rh_core.resources.env import Env, as_env
from rh_core.resources.function import as_cluster
from rh_core.resources.provider_secrets import Provider, providers

#: Where references are saved: ``~/secrets/<name>``.
FOLDER = "~/secrets"
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
ENV_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def check_name(name: Any) -> str:
    """``name`` if a secret can be saved under it, else ConfigError saying what fits."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"bad secret name {name!r:.60}: use 1-100 letters, digits, '_', '-' or "
                          f"'.', starting with a letter, digit or '_'")
    return name


def _name(inst, attr, value):
    if value is not None:
        check_name(value)


@attrs.define(kw_only=True, slots=False)
class Secret(Resource):
    """A named set of secret values (``{"api_key": ...}``), of a provider or your own."""

    resource_type: ClassVar[str] = "secret"

    name: str | None = attrs.field(default=None, validator=_name)
    #: ``aws``, ``gcp``, ... (see ``rh.provider_secret``); None for your own values.
    provider: str | None = None
    #: The backend holding the values once saved; when None, ``save()`` uses the user config's
    #: ``secret_backend``.
    backend: str | None = None
    #: Names of the values (never the values).
    keys: list[str] = attrs.field(factory=list)
    #: Environment variable -> key, for ``in_env()`` and ``.to(cluster, env=...)``; empty: the
    #: provider's variables, or ``<NAME>_<KEY>`` upper-cased for your own secrets.
    env_vars: dict[str, str] = attrs.field(factory=dict)
    #: Where the provider's main file goes on a machine (``~/.aws/credentials``).
    path: str | None = None
    #: The values, once given or fetched; never in the config, the repr or equality.
    _values: dict[str, str] | None = attrs.field(default=None, repr=False, eq=False,
                                                 metadata={"config": False})

    def __attrs_post_init__(self):
        if self._values is not None:
            if not isinstance(self._values, dict) or not all(
                    isinstance(k, str) and k and isinstance(v, str) for k, v in self._values.items()):
                raise ConfigError("a secret's values map key names to text: values={'api_key': '...'}")
            self.keys = sorted(self._values)
        for var in self.env_vars:
            _check_var(var)

    # ------------------------------------------------------------------ values

    @property
    def values(self) -> dict[str, str]:
        """The values: as given, or fetched from the backend the first time they are read."""
        if self._values is None:
            self._values = self._fetch()
        return dict(self._values)

    def __getstate__(self) -> dict:
        # A pickled secret (an argument, or captured by a function sent to a cluster, whose
        # pickled code the server keeps in its saved specs) never carries its values.
        state = dict(self.__dict__, _values=None)
        state["_values_left_behind"] = self._values is not None
        return state

    def _fetch(self) -> dict[str, str]:
        if self.__dict__.get("_values_left_behind"):
            try:
                got = backends.read_values(self.backend, self.name) \
                    if self.name and self.backend else None
            except Exception:  # the backend is not here: say why the values are missing
                got = None
            if isinstance(got, dict):
                return got
            raise SecretNotFoundError(
                f"secret {self.name!r} came here pickled, and a pickled secret never carries "
                f"its values; send them to the cluster with secret.to(cluster, env=...) and "
                f"read them from os.environ (or its files)")
        if not self.name or not self.backend:
            raise SecretNotFoundError("this secret has no values: give them (rh.secret(name=..., "
                                      "values={...})) or load a saved one (rh.secret(NAME))")
        try:
            got = backends.read_values(self.backend, self.name)
        except ValueError:
            got = None
        if not isinstance(got, dict):
            raise SecretNotFoundError(
                f"the {self.backend} backend has no values for the secret {self.name!r} (its "
                f"reference is {self.rns_address}): save it again with overwrite=True, or remove "
                f"the reference with rh.secret({self.name!r}).delete()")
        return got

    @property
    def rns_address(self) -> str | None:
        """Where the reference is saved: ``~/secrets/<name>`` (or where it was loaded from)."""
        if self._rns_address:
            return self._rns_address
        return f"{FOLDER}/{self.name}" if self.name else None

    # ------------------------------------------------------------------ save, delete

    def save(self, name: str | None = None, overwrite: bool = False,
             folder: str = FOLDER) -> Secret:
        """Put the values in the backend and the reference at ``<folder>/<name>``, both or
        neither. An existing secret of that name is replaced only with ``overwrite=True``."""
        target = check_name(name) if name is not None else self.name
        if not target:
            raise ConfigError("give the secret a name to save it: rh.secret(name='openai', "
                              "values={...}).save()")
        values = self.values
        backend = self.backend or user_config.value("secret_backend")
        backends.secret_backend(backend)  # not installed: fails here, before anything is written
        address = f"{folder}/{target}"
        old = _reference(address)
        if old is not None and not overwrite:
            raise ConfigError(
                f"a secret named {target!r} is already saved ({address}, values in "
                f"{old.get('backend')}); to replace it (its old values are then gone) save with "
                f"overwrite=True, or pick another name")
        old_backend = (old or {}).get("backend")
        previous = _quiet_read(backend, target)  # put back if the reference cannot be written
        backends.write_values(backend, target, values)
        given = (self.name, self.backend, self.keys)
        self.name, self.backend, self.keys = target, backend, sorted(values)
        try:
            rns.save_config(address, self.config())
        except BaseException:
            self.name, self.backend, self.keys = given
            _undo(backend, target, previous)
            raise
        if old_backend and old_backend != backend:
            _undo(old_backend, target, None)
        self._values, self._rns_address = dict(values), address
        return self

    def delete(self) -> bool:
        """Remove the values from their backend and the reference; whether one was saved."""
        address = self.rns_address
        if not address:
            raise ConfigError("this secret has no name, so nothing of it is saved")
        ref = _reference(address)
        backend = (ref or {}).get("backend") or self.backend
        if backend:
            backends.delete_values(backend, self.name)
        if ref is not None:
            rns.delete(address)
        return ref is not None

    # ------------------------------------------------------------------ use

    def _provider(self) -> Provider | None:
        return providers().get(self.provider) if self.provider else None

    def env_mapping(self, env_vars: dict[str, str] | None = None) -> dict[str, str]:
        """Environment variable -> key: ``env_vars``, else the saved mapping, else the
        provider's variables, else ``<NAME>_<KEY>`` (``openai`` + ``api_key``:
        ``OPENAI_API_KEY``)."""
        keys = self.keys or sorted(self.values)
        if env_vars is not None:
            for var, key in env_vars.items():
                _check_var(var)
                if key not in keys:
                    raise ConfigError(f"env_vars maps {var} to {key!r}, which secret "
                                      f"{self.name!r} does not have; its keys: {keys}")
            return dict(env_vars)
        if self.env_vars:
            return dict(self.env_vars)
        provider = self._provider()
        if provider is not None:
            return {var: key for var, key in provider.env_vars.items() if key in keys}
        prefix = re.sub(r"[^A-Za-z0-9]", "_", self.name or "").upper()
        out = {}
        for key in keys:
            var = re.sub(r"[^A-Za-z0-9]", "_", key).upper()
            out[var if not prefix or var.startswith(prefix + "_") else f"{prefix}_{var}"] = key
        return out

    def in_env(self, env_vars: dict[str, str] | None = None) -> list[str]:
        """Set the secret's environment variables in this process (``os.environ``); returns
        their names."""
        values = self.values
        mapping = self.env_mapping(env_vars)
        for var, key in mapping.items():
            os.environ[var] = values[key]
        return sorted(mapping)

    def write(self, path: str | None = None) -> list[str]:
        """Write the provider's files on this machine (at ``path`` instead of its usual place
        when given; 0600, an INI file's other sections kept, a changed file's previous content in
        ``<file>.rh-backup``). A secret without files of its own is written as JSON to
        ``path``. Returns the files written."""
        values, provider = self.values, self._provider()
        if provider is None or provider.files is None:
            if path is None:
                raise ConfigError(
                    f"secret {self.name!r} has no files of its own; give path= to write its "
                    f"values there as JSON, or set them as variables with in_env()")
            return [secret_files.place(path, Path.home(), json.dumps(values, indent=2))]
        return [secret_files.place(f["path"], Path.home(), f.get("content"), f.get("ini"))
                for f in provider.files(values, path or self.path or provider.default_path)]

    def to(self, system: Any, env: Env | str | list | None = None,
           env_vars: dict[str, str] | None = None, path: str | None = None) -> Secret:
        """Send the secret to a cluster: a provider's files where its tools look for them in
        the cluster user's home (0600), and, with ``env`` or ``env_vars`` (always, for your own
        secrets: the ``base`` env by default), environment variables of that env's workers."""
        cluster = as_cluster(system)
        body = self.payload(env, env_vars, path)
        name = self.name or self.provider or "secret"
        try:
            cluster.client().put_secret(name, body)
        except ConnectionFailedError as e:
            raise ConnectionFailedError(
                f"secret {name!r} was not sent: cluster {cluster.short_name!r} cannot be reached "
                f"({e}). Bring it up (cluster.up()) and send the secret again") from None
        return self

    def payload(self, env: Env | str | list | None = None, env_vars: dict[str, str] | None = None,
                path: str | None = None) -> dict:
        """The body of ``PUT /secrets/{name}`` (values included: it only travels in a request
        body, over the cluster's authenticated connection)."""
        values, provider = self.values, self._provider()
        files: list[dict] = []
        main = None
        if provider is not None and provider.files is not None:
            main = path or self.path or provider.default_path
            files = provider.files(values, main)
        body: dict = {"files": files, "env": None, "env_vars": {}, "path_vars": {}}
        if env is not None or env_vars is not None or provider is None or not files:
            body["env"] = as_env(env).key if env is not None else "base"
            body["env_vars"] = {var: values[key] for var, key in self.env_mapping(env_vars).items()
                                if key in values}
            if provider is not None and main:
                body["path_vars"] = {var: main for var in provider.path_vars}
        return body


def _check_var(var: Any) -> None:
    if not isinstance(var, str) or not ENV_VAR.match(var) or var.upper().startswith("RH_"):
        raise ConfigError(f"bad environment variable name {var!r:.60}: letters, digits and '_', "
                          f"not starting with a digit nor with RH_ (rh's own)")


def _reference(address: str) -> dict | None:
    try:
        return rns.load_config(address)
    except ResourceNotFoundError:
        return None


def _quiet_read(backend: str, name: str) -> dict | None:
    try:
        return backends.read_values(backend, name)
    except ValueError:
        return None


def _undo(backend: str, name: str, previous: dict | None) -> None:
    """Put back what a failed save replaced (or remove what it wrote)."""
    try:
        if previous is not None:
            backends.write_values(backend, name, previous)
        else:
            backends.delete_values(backend, name)
    except Exception as e:  # the save's own error is the one to raise
        warnings.warn(f"the values of secret {name!r} written to {backend} could not be removed "
                      f"again ({type(e).__name__}); remove them with rh.secret_backend("
                      f"{backend!r}).delete_values('{backends.backend_key(name)}')",
                      RuntimeWarning, stacklevel=3)
