"""Resource names: saving, loading and listing configs by name.

``~/a/b`` lives in the local store (a folder under the rh home), ``^name`` in the builtin store
(configs shipped inside installed packages). A name without a prefix is relative to
:func:`current_folder`.
"""

from __future__ import annotations

import json
import re
from importlib import resources as importlib_resources

from rh_core.errors import ConfigError, ResourceNotFoundError
from rh_core.hookspecs import hookimpl
from rh_core.interfaces import RnsStore
from rh_core.paths import rh_home, write_private

_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_current = ["~"]


def current_folder() -> str:
    """The folder names without a prefix are resolved in (``~`` unless changed)."""
    return _current[0]


def set_folder(folder: str) -> None:
    """Change the folder that names without a prefix resolve in."""
    prefix, path = split_name(folder if folder[:1] in "~^@" else f"~/{folder}")
    _current[0] = prefix if not path else f"{prefix}/{path}"


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
    prefix, path = split_name(name)
    return f"{prefix}/{path}" if prefix != "^" else f"^{path}"


def _store(prefix: str) -> RnsStore:
    from rh_core.plugins import registry

    return registry().rns_store(prefix)


def load_config(name: str) -> dict:
    prefix, path = split_name(name)
    config = _store(prefix).load(path)
    if config is None:
        raise ResourceNotFoundError(
            f"no resource saved as {full_name(name)!r}; saved here: {list_names(prefix) or 'none'}"
        )
    return config


def load(name: str):
    """The resource saved under ``name``."""
    from rh_core.converter import structure

    return structure(load_config(name))


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


class LocalStore(RnsStore):
    """``~``: JSON files under ``$RH_HOME/rns``."""

    prefix = "~"

    def _path(self, path: str):
        return rh_home() / "rns" / f"{path}.json"

    def load(self, path: str) -> dict | None:
        p = self._path(path)
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as e:
            raise ConfigError(f"saved config {p} is not valid JSON ({e}); fix or delete it") from None

    def save(self, path: str, config: dict) -> None:
        write_private(self._path(path), json.dumps(config, indent=2, sort_keys=True))

    def delete(self, path: str) -> bool:
        p = self._path(path)
        try:
            p.unlink()
            return True
        except FileNotFoundError:
            return False

    def list(self, folder: str) -> list[str]:
        base = rh_home() / "rns" / folder
        if not base.is_dir():
            return []
        return sorted(
            (f"{folder}/{p.stem}" if folder else p.stem) for p in base.glob("*.json")
        )


class BuiltinStore(RnsStore):
    """``^``: read-only configs shipped in ``rh_core/builtin_configs``."""

    prefix = "^"
    writable = False

    def _files(self):
        return importlib_resources.files("rh_core") / "builtin_configs"

    def load(self, path: str) -> dict | None:
        f = self._files() / f"{path}.json"
        return json.loads(f.read_text()) if f.is_file() else None

    def save(self, path: str, config: dict) -> None:
        raise ConfigError("builtin configs are read-only")

    def delete(self, path: str) -> bool:
        raise ConfigError("builtin configs are read-only")

    def list(self, folder: str) -> list[str]:
        return sorted(p.name[:-5] for p in self._files().iterdir() if p.name.endswith(".json"))


@hookimpl
def rh_rns_stores(register):
    register(LocalStore())
    register(BuiltinStore())
