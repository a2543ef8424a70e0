"""Resource names: which store a name lives in, and saving, loading and listing configs there.

A name's first character picks the store (``~`` local, ``^`` builtin, ``@`` shared; stores are
plugins, see :mod:`rh_core.builtin.stores`); a name without a prefix is relative to
:func:`current_folder`. This module deals in configs (plain JSON); turning a config into a
resource is :func:`rh_core.resources.base.load`.
"""

from __future__ import annotations

import re

from rh_core import user_config
from rh_core.errors import ConfigError, ResourceNotFoundError
from rh_core.plugin.interfaces import RnsStore
from rh_core.plugin.registry import registry

_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
#: The folder set by :func:`set_folder`; None: the user config's ``default_folder`` (``~``).
_current: list[str | None] = [None]


def current_folder() -> str:
    """The folder names without a prefix are resolved in: the ``default_folder`` of the user's
    config (``~`` unless set) until :func:`set_folder` changes it. Where its configs are kept on
    disk is :func:`current_store`."""
    if _current[0] is None:
        return _folder(user_config.value("default_folder"))
    return _current[0]


def current_store() -> str:
    """Where the store of :func:`current_folder` saves configs now. For ``~``: the ``rh/``
    folder of the git repository holding the working directory, when it has one; else
    ``$RH_HOME/rns``."""
    return _store(current_folder()[0]).location()


def set_folder(folder: str) -> None:
    """Change the folder that names without a prefix resolve in."""
    _current[0] = _folder(folder)


def _folder(folder: str) -> str:
    """``"proj"`` -> ``"~/proj"``, ``"~/a/"`` -> ``"~/a"``."""
    prefix, path = split_name(folder if folder[:1] in "~^@" else f"~/{folder}")
    return prefix if not path else f"{prefix}/{path}"


def split_name(name: str) -> tuple[str, str]:
    """``"~/a/b"`` -> ``("~", "a/b")``; a bare name is taken relative to the current folder."""
    if not name or not isinstance(name, str):
        raise ConfigError(f"a resource name must be a non-empty string, got {name!r}")
    if name[0] in "~@^":
        prefix, rest = name[0], name[1:].lstrip("/")
    else:
        folder = current_folder()
        prefix, base = folder[0], folder[1:].lstrip("/")
        rest = f"{base}/{name}" if base else name
    parts = [p for p in rest.split("/") if p]
    for p in parts:
        if not _PART.match(p) or p in {".", ".."}:
            raise ConfigError(
                f"bad resource name {name!r}: each part must be letters, digits, '_', '-' or '.', "
                f"not starting with '.' or '-'"
            )
    return prefix, "/".join(parts)


def full_name(name: str) -> str:
    """The name with its store's prefix: ``"b"`` in folder ``~/a`` -> ``"~/a/b"``."""
    prefix, path = split_name(name)
    return f"{prefix}/{path}" if prefix != "^" else f"^{path}"


def _store(prefix: str) -> RnsStore:
    return registry().rns_store(prefix)


def load_config(name: str) -> dict:
    prefix, path = split_name(name)
    config = _store(prefix).load(path)
    if config is None:
        raise ResourceNotFoundError(
            f"no resource saved as {full_name(name)!r}; saved here: {list_names(prefix) or 'none'}"
        )
    return config


def exists(name: str) -> bool:
    """Whether a resource is saved under ``name``."""
    prefix, path = split_name(name)
    return _store(prefix).load(path) is not None


def save_config(name: str, config: dict) -> str:
    prefix, path = split_name(name)
    store = _store(prefix)
    if not store.writable:
        raise ConfigError(f"the store {prefix!r} is read-only; save under '~/...' instead")
    store.save(path, config)
    return full_name(name)


def delete(name: str) -> bool:
    """Delete the saved config ``name``; returns whether there was one."""
    prefix, path = split_name(name)
    return _store(prefix).delete(path)


def list_names(prefix: str = "~", folder: str = "") -> list[str]:
    return _store(prefix).list(folder)


def places(folder: str = "~") -> dict[str, list[str]]:
    """The full names (and subfolders, ending in ``/``) under ``folder``, by the place that
    holds them, in the order loading looks (what ``rh ls`` prints)."""
    prefix, path = split_name(folder)
    head = prefix if prefix == "^" else f"{prefix}/"
    return {place: [f"{head}{n}" for n in names]
            for place, names in _store(prefix).places(path).items()}
