"""The built-in name stores: ``~`` (JSON files under the rh home) and ``^`` (configs shipped in
rh_core). Registered through the ``rh_rns_stores`` hook like any plugin's store."""

from __future__ import annotations

import json
from importlib import resources as importlib_resources

from rh_core.errors import ConfigError
from rh_core.paths import rh_home, write_private
from rh_core.plugin.hookspecs import hookimpl
from rh_core.plugin.interfaces import RnsStore


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
    """``^``: read-only configs shipped in ``rh_core/builtin/configs``."""

    prefix = "^"
    writable = False

    def _files(self):
        return importlib_resources.files("rh_core.builtin") / "configs"

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
