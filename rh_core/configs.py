"""``rh.configs``: the user's defaults in ``~/.rh/config.yaml`` (``get``, ``set``, ``unset``,
``all``), and sharing them and local secrets through the shared store ``@``
(``upload_defaults``, ``rh.login``), which the rh-den plugin will provide.

The file itself, its keys and their checks are :mod:`rh_core.user_config`.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

from rh_core import user_config
from rh_core.errors import ConfigError, SecretNotFoundError, UnknownPluginItemError
from rh_core.names import resolve as rns
from rh_core.plugin.interfaces import RnsStore
from rh_core.plugin.registry import registry
from rh_core.resources.provider_secrets import providers
from rh_core.resources.secret_factories import ask, provider_secret

#: Where ``upload_defaults`` puts the defaults in the shared store.
SHARED_DEFAULTS = "@/defaults"
#: Where ``rh.login`` puts uploaded secrets' references in the shared store.
SHARED_SECRETS = "@/secrets"

KEYS = user_config.KEYS


def path() -> Path:
    """The file: ``$RH_HOME/config.yaml`` (``~/.rh/config.yaml``)."""
    return user_config.config_file()


def get(key: str, default: Any = None) -> Any:
    """The value in force for ``key``: ``RH_<KEY>`` if set, else the file's, else the built-in
    default (``default`` when that is None)."""
    found = user_config.value(key)
    return default if found is None else found


def set(key: str, value: Any) -> None:  # noqa: A001 - rh.configs.set, as Runhouse spelled it
    """Set ``key`` in the file (typed: ``rh.configs.set("use_spot", True)``). Keys and values
    that look like credentials are refused: the file never holds a secret."""
    user_config.set_value(key, value)


def unset(key: str) -> bool:
    """Remove ``key`` from the file; whether it was there."""
    return user_config.unset_value(key)


def all() -> dict[str, Any]:  # noqa: A001 - rh.configs.all(), as Runhouse spelled it
    """Every key with the value in force."""
    loaded = user_config.load()
    return {k: getattr(loaded, k) for k in KEYS}


def sources() -> dict[str, str]:
    """Where each key's value comes from: ``default``, ``file`` or ``env RH_<KEY>``."""
    return user_config.sources()


def _shared_store() -> RnsStore:
    try:
        return registry().rns_store("@")
    except UnknownPluginItemError as e:
        raise UnknownPluginItemError(
            "rns store", "@", e.installed,
            hint="Sharing defaults and secrets needs the shared store @, which the rh-den plugin "
                 "provides (pip install rh-den; not released yet). Until then they stay on this "
                 f"machine: defaults in {path()}, secret values in the secret backend.") from None


def _shared_folder() -> str:
    """``@/<user>`` when logged in to the shared store, else ``@`` (a store without users)."""
    user = _shared_store().whoami()
    return f"@/{user}" if user else "@"


def _upload_defaults() -> str:
    """Put the defaults set in the file into the shared store (``@/<user>/defaults``); returns
    where. Needs the shared store ``@`` (rh-den)."""
    where = f"{_shared_folder()}/{SHARED_DEFAULTS[2:]}"
    rns.save_config(where, {"resource_type": "defaults", "values": user_config.file_values()})
    return where


upload_defaults = _upload_defaults


def login(url: str | None = None, token: str | None = None, *, interactive: bool | None = None,
          upload_secrets: bool | None = None, upload_defaults: bool | None = None) -> dict:
    """Log in to the shared store ``@`` (rh-den) at ``url`` (None: the ``den_url`` already set)
    with ``token``; ``rh.login("TOKEN")`` works too. The token goes to the secret backend, never
    to the config file. Then, when ``interactive`` (default: without a token given, on a
    terminal), offer to upload your defaults and the credentials found on this machine;
    ``upload_secrets``/``upload_defaults`` answer for all. Returns ``{"user", "url",
    "defaults", "secrets"}``: who you are and what was uploaded where."""
    store = _shared_store()
    if url is not None and token is None and not url.startswith(("http://", "https://")):
        url, token = None, url  # rh.login(token): Runhouse's spelling
    if interactive is None:
        interactive = token is None and sys.stdin.isatty()
    url = url or user_config.value("den_url")
    user = store.whoami()
    if token is None and interactive and user is None:  # not logged in yet: ask
        url = url or input("the shared store's URL: ").strip()
        token = getpass.getpass(f"your token for {url}: ").strip() or None
    if token is not None:
        if not url:
            raise ConfigError("give the shared store's URL: rh.login(url, token), or set it once "
                              "with rh config set den_url URL")
        user = store.login(url, token)
    if upload_defaults is None:
        upload_defaults = interactive and ask(f"Upload your defaults ({path()}) to the shared "
                                              f"store?")
    done: dict = {"user": user, "url": url,
                  "defaults": _upload_defaults() if upload_defaults else None, "secrets": []}
    if upload_secrets is False or (upload_secrets is None and not interactive):
        return done
    folder = f"{_shared_folder()}/{SHARED_SECRETS[2:]}"
    for provider in sorted(providers()):
        try:
            found = provider_secret(provider)
        except (SecretNotFoundError, ConfigError):
            continue
        if upload_secrets or ask(f"Upload your {provider} credentials as the secret "
                                 f"{found.name!r}?"):
            # Values go where the reference can be read from anywhere: the store's own backend.
            found.backend = store.secret_backend or found.backend
            found.save(overwrite=True, folder=folder)
            done["secrets"].append(found.name)
    return done
