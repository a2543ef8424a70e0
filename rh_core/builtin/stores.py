"""The built-in name stores: ``~`` (JSON files in the working git repository's ``rh/`` folder,
and under the rh home) and ``^`` (configs shipped in rh_core). Registered through the
``rh_rns_stores`` hook like any plugin's store.

``~`` names live next to the code when they can: inside a git repository whose root has an
``rh/`` folder, configs are saved there (``rh/<path>.json``, sorted keys, indented, a trailing
newline: readable in a diff), so they are versioned and published with the code. Elsewhere, and
in a repository without ``rh/``, they stay in ``$RH_HOME/rns/``. Loading looks in the
repository's folder first, then in the rh home.
"""

from __future__ import annotations

import json
from importlib import resources as importlib_resources
from pathlib import Path

from rh_core.errors import ConfigError
from rh_core.paths import rh_home, write_atomic, write_private
from rh_core.plugin.hookspecs import hookimpl
from rh_core.plugin.interfaces import RnsStore

#: The folder at a repository's root that holds its ``~`` names.
REPO_FOLDER = "rh"


def repo_root(start: Path | None = None) -> Path | None:
    """The root of the git repository holding ``start`` (the working directory): the nearest
    folder, going up, with a ``.git`` (a folder, or a file in worktrees and submodules). None
    outside a repository. No git program is needed."""
    try:
        here = (start or Path.cwd()).resolve()
    except OSError:  # the working directory was removed
        return None
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def repo_store() -> Path | None:
    """The working repository's ``rh/`` folder, when the working directory is in a git
    repository that has one at its root."""
    root = repo_root()
    if root is not None and (root / REPO_FOLDER).is_dir():
        return root / REPO_FOLDER
    return None


def _read(p: Path) -> dict | None:
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as e:
        raise ConfigError(f"saved config {p} is not valid JSON ({e}); fix or delete it") from None


def _entries(base: Path) -> list[str]:
    """Names (``*.json`` without the suffix) and subfolders (ending in ``/``) in ``base``."""
    if not base.is_dir():
        return []
    names = [p.stem for p in base.glob("*.json") if not p.name.startswith(".")]
    folders = [f"{p.name}/" for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return sorted(names + folders)


class LocalStore(RnsStore):
    """``~``: JSON files in the working repository's ``rh/`` folder (when it has one), then
    under ``$RH_HOME/rns``."""

    prefix = "~"

    def folders(self) -> list[Path]:
        """Where ``~`` names are looked for, in order; :meth:`save` writes to the first."""
        home = rh_home() / "rns"
        repo = repo_store()
        return [repo, home] if repo is not None else [home]

    def load(self, path: str) -> dict | None:
        for folder in self.folders():
            config = _read(folder / f"{path}.json")
            if config is not None:
                return config
        return None

    def save(self, path: str, config: dict) -> None:
        folder = self.folders()[0]
        text = json.dumps(config, indent=2, sort_keys=True) + "\n"
        if folder == rh_home() / "rns":
            write_private(folder / f"{path}.json", text)
        else:  # published with the code: readable like the code (configs hold no secrets)
            write_atomic(folder / f"{path}.json", text)

    def delete(self, path: str) -> bool:
        """Delete the config that :meth:`load` finds (the repository's first)."""
        for folder in self.folders():
            try:
                (folder / f"{path}.json").unlink()
                return True
            except FileNotFoundError:
                continue
        return False

    def list(self, folder: str) -> list[str]:
        found = {n for base in self.folders() for n in _entries(base / folder)
                 if not n.endswith("/")}
        return sorted(f"{folder}/{n}" if folder else n for n in found)

    def location(self) -> str:
        return str(self.folders()[0])

    def places(self, folder: str) -> dict[str, list[str]]:
        out = {}
        for i, base in enumerate(self.folders()):
            kind = "the rh home" if base == rh_home() / "rns" else "this git repository"
            saved = "; new names are saved here" if i == 0 else ""
            out[f"{base} ({kind}{saved})"] = [f"{folder}/{n}" if folder else n
                                              for n in _entries(base / folder)]
        return out


class BuiltinStore(RnsStore):
    """``^``: read-only configs shipped in ``rh_core/builtin/configs``, and in the ``configs``
    folder of each installed provider plugin's package (``rh_skypilot/configs/rh-cpu.json``
    is ``^rh-cpu``); the core's come first."""

    prefix = "^"
    writable = False

    def _folders(self) -> list:
        # The registry is read when a ^ name is, not when the store is made (stores are
        # registered while the registry is built).
        from rh_core.plugin.registry import registry

        folders = [importlib_resources.files("rh_core.builtin") / "configs"]
        for cls in registry().providers.values():
            package = cls.__module__.split(".")[0]
            if package == "rh_core":
                continue
            folder = importlib_resources.files(package) / "configs"
            if folder.is_dir() and folder not in folders:
                folders.append(folder)
        return folders

    def load(self, path: str) -> dict | None:
        for folder in self._folders():
            f = folder / f"{path}.json"
            if f.is_file():
                return json.loads(f.read_text())
        return None

    def save(self, path: str, config: dict) -> None:
        raise ConfigError("builtin configs are read-only")

    def delete(self, path: str) -> bool:
        raise ConfigError("builtin configs are read-only")

    def list(self, folder: str) -> list[str]:
        return sorted({p.name[:-5] for f in self._folders() for p in f.iterdir()
                       if p.name.endswith(".json")})

    def location(self) -> str:
        return str(self._folders()[0])


@hookimpl
def rh_rns_stores(register):
    register(LocalStore())
    register(BuiltinStore())
