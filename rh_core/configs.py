"""``rh.configs``: the user's defaults in ``~/.rh/config.yaml`` (``get``, ``set``, ``unset``,
``all``), and sharing them and local secrets through the shared store ``@``
(``upload_defaults``, ``rh.login``), which the rh-den plugin will provide.

The file itself, its keys and their checks are :mod:`rh_core.user_config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rh_core import user_config
from rh_core.errors import ConfigError, SecretNotFoundError, UnknownPluginItemError
from rh_core.names import resolve as rns
from rh_core.plugin.interfaces import RnsStore
from rh_core.plugin.registry import registry
from rh_core.resources.provider_secrets import providers
from rh_core.resources.secret import Secret
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


def _upload_defaults() -> str:
    """Put the defaults set in the file into the shared store (``@/defaults``); returns where.
    Needs the shared store ``@`` (rh-den)."""
    _shared_store()
    rns.save_config(SHARED_DEFAULTS, {"resource_type": "defaults",
                                      "values": user_config.file_values()})
    return SHARED_DEFAULTS


upload_defaults = _upload_defaults


def login(token: str | None = None, interactive: bool = True, upload_secrets: bool | None = None,
          upload_defaults: bool | None = None) -> dict:
    """Log in to the shared store ``@`` (rh-den): keep ``token`` as the secret ``den`` (never in
    the config file), then offer to upload your defaults and the credentials found on this
    machine (asked one by one when ``interactive``; ``upload_secrets``/``upload_defaults``
    answer for all). Returns what was uploaded."""
    _shared_store()
    if token:
        Secret(name="den", values={"token": token}).save(overwrite=True)
    if upload_defaults is None:
        upload_defaults = interactive and ask(f"Upload your defaults ({path()}) to the shared "
                                              f"store?")
    done: dict = {"defaults": _upload_defaults() if upload_defaults else None, "secrets": []}
    if upload_secrets is False or (upload_secrets is None and not interactive):
        return done
    for provider in sorted(providers()):
        try:
            found = provider_secret(provider)
        except (SecretNotFoundError, ConfigError):
            continue
        if upload_secrets or ask(f"Upload your {provider} credentials as the secret "
                                 f"{found.name!r}?"):
            found.save(overwrite=True, folder=SHARED_SECRETS)
            done["secrets"].append(found.name)
    return done
