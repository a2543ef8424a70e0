"""Names in a store with accounts, versions and sharing (``@/...``, the rh-den plugin's store):
logging in, who you are, what a folder holds, a resource's history and who it is shared with.

Each function asks the store that holds the name; a store without these (``~``) says so.
"""

from __future__ import annotations

from rh_core.names import resolve
from rh_core.plugin.registry import registry


def _shared():
    return resolve._store("@")


def _installed():
    return registry().rns_stores.get("@")


def store_url() -> str | None:
    """The shared store's URL this machine uses, or None (no store plugin, none set)."""
    store = _installed()
    url = getattr(store, "url", None) if store is not None else None
    return url() if callable(url) else None


def logged_in_user() -> str | None:
    """The user logged in to the shared store, without asking it; None when not logged in or
    no store plugin is installed."""
    store = _installed()
    return store.whoami() if store is not None else None


def login(url: str, token: str) -> str:
    """Log in to the shared store at ``url`` with ``token`` (the store keeps the token in the
    secret backend, never in a config file); returns the user's name. ``rh.login`` is
    :func:`rh_core.configs.login`, which also offers to upload defaults and credentials."""
    return _shared().login(url, token)


def logout() -> None:
    """Forget the shared store's token on this machine."""
    _shared().logout()


def whoami() -> str | None:
    """The user logged in to the shared store, or None."""
    return _shared().whoami()


def resources(folder: str = "~") -> list[tuple[str, str]]:
    """``(full name, resource_type)`` of the resources directly in ``folder``."""
    prefix, path = resolve.split_name(folder)
    head = prefix if prefix == "^" else f"{prefix}/"
    return [(f"{head}{name}", kind) for name, kind in resolve._store(prefix).resources(path)]


def history(name: str) -> list[dict]:
    """The versions of ``name``, newest first: ``[{"version", "timestamp", "author"}, ...]``."""
    prefix, path = resolve.split_name(name)
    return resolve._store(prefix).history(path)


def share(name: str, users: list[str] | str = (), access_level: str = "read",
          visibility: str | None = None) -> dict:
    """Give users or groups (names or email addresses) ``access_level`` (``read`` or
    ``write``) on ``name``, and/or set its visibility (``private``, ``unlisted``, ``public``)."""
    prefix, path = resolve.split_name(name)
    users = [users] if isinstance(users, str) else list(users or [])
    return resolve._store(prefix).share(path, users, access_level, visibility)


def revoke(name: str, users: list[str] | str) -> dict:
    """Take back what :func:`share` gave these users or groups."""
    prefix, path = resolve.split_name(name)
    users = [users] if isinstance(users, str) else list(users)
    return resolve._store(prefix).revoke(path, users)
