"""Folders: ``rh.folder(path=...)`` on this machine, in object storage or on a cluster, copied
between them with ``.to()``, and read and written in place (``ls``, ``get``, ``put``, ``mkdir``,
``mv``, ``rm``). Passed to a function on a cluster, a folder arrives as its path there."""

from __future__ import annotations

import posixpath
from typing import Any, ClassVar

import attrs

from rh_core.errors import ConfigError
from rh_core.resources.base import load
from rh_core.resources.cluster import Cluster
from rh_core.resources.data import systems
from rh_core.resources.data.common import Data
from rh_core.resources.data.places import place_for
from rh_core.transport import archive


@attrs.define(kw_only=True, slots=False)
class Folder(Data):
    """A folder of files in a system: this machine, object storage, or a cluster's node."""

    resource_type: ClassVar[str] = "folder"

    def _full(self, name: str) -> str:
        return self.place.join(self._need_path(), name)

    def ls(self, full_paths: bool = True, sort: bool = False) -> list[str]:
        """What the folder holds: full paths (``full_paths=False``: names only)."""
        names = [e["name"] for e in self.place.ls(self._need_path())]
        out = [self._full(n) for n in names] if full_paths else names
        return sorted(out) if sort else out

    def get(self, name: str, mode: str = "rb", encoding: str | None = None) -> bytes | str:
        """The contents of the file ``name`` in the folder: bytes, or text with ``mode="r"``."""
        if mode not in ("rb", "r"):
            raise ConfigError(f"get() reads with mode 'rb' (bytes) or 'r' (text), not {mode!r}")
        data = self.place.read(self._full(_name(name)))
        return data.decode(encoding or "utf-8") if mode == "r" else data

    def put(self, contents: dict[str, Any], overwrite: bool = False, mode: str = "wb") -> Folder:
        """Write files into the folder: ``{"name": bytes or text}``. A file that is already
        there raises DataExistsError unless ``overwrite=True`` (then nothing is written)."""
        if not isinstance(contents, dict):
            raise ConfigError("put() takes a dict of file name -> bytes or text")
        files = {}
        for name, value in contents.items():
            if isinstance(value, str):
                value = value.encode()
            elif isinstance(value, (bytearray, memoryview)):
                value = bytes(value)
            elif not isinstance(value, bytes):
                raise ConfigError(f"put(): the value of {name!r} is a {type(value).__name__}; give "
                                  f"bytes or text (pickle.dumps(obj) for an object)")
            files[_name(name)] = value
        self.place.write(self._need_path(), files, overwrite)
        return self

    def mkdir(self) -> Folder:
        """Make the folder (and its parents) if it is not there (object storage has no empty
        folders: there this does nothing until a file is put)."""
        self.place.mkdir(self._need_path())
        return self

    def mv(self, path: str, system: Any = None, overwrite: bool = True) -> Folder:
        """Move the folder to ``path`` (in ``system``, by default its own); this folder then
        names the new place."""
        target = systems.as_system(system) if system is not None else self.system
        if target != self.system:
            moved = self.to(target, path=path, overwrite=overwrite)
            self.rm()
        else:
            dest = _normalized(self.system, path)
            self.place.move(self._need_path(), dest, overwrite)
            moved = attrs.evolve(self, path=dest)
        self.system, self.path = moved.system, moved.path
        self.__dict__["_rt"] = {"place": place_for(self.system, self.data_config)}
        return self

    def rm(self, contents: list[str] | None = None, recursive: bool = True) -> None:
        """Delete the folder, or only ``contents`` (names in it); ``recursive=False`` deletes
        what the folder holds and keeps the folder."""
        if contents is not None:
            self.place.remove(self._need_path(), [_name(n) for n in contents])
        elif recursive:
            self.place.remove(self._need_path())
        else:
            self.place.remove(self._need_path(), self.ls(full_paths=False))


def _name(name: str) -> str:
    if not isinstance(name, str):
        raise ConfigError(f"a file name is text, got {name!r:.80}")
    return archive.check_name(name)


def _normalized(system, path: str) -> str:
    if system == "file":
        return posixpath.abspath(posixpath.expanduser(path))
    if isinstance(system, Cluster):
        return path
    return systems.storage_url(system, path)


def resolve_aliases(path, system, fs, url) -> tuple[Any, Any]:
    """Runhouse's older spellings: ``url=`` for ``path=``, ``fs=`` for ``system=``."""
    if url is not None:
        if path is not None and path != url:
            raise ConfigError("give the path once, as path= (or url=, Runhouse's older name)")
        path = url
    if fs is not None:
        if system is not None and system != fs:
            raise ConfigError("give the system once, as system= (or fs=, Runhouse's older name)")
        system = fs
    return path, system


def load_kind(name: str, cls: type):
    """The resource saved under ``name``, checking its kind."""
    loaded = load(name)
    if not isinstance(loaded, cls):
        raise ConfigError(f"{name!r} is a {loaded.resource_type}, not a {cls.resource_type}")
    return loaded


def folder(name: str | None = None, path: str | None = None, system: Any = None,
           dryrun: bool = False, data_config: dict | None = None, *, fs: Any = None,
           url: str | None = None) -> Folder:
    """A folder: ``rh.folder(path="./data")`` on this machine, ``system=`` a cluster (or its
    name) or a storage protocol (``"s3"``, or a ``s3://`` path); ``rh.folder(name=...)`` loads a
    saved one. ``fs=`` and ``url=`` are Runhouse's older names of ``system=`` and ``path=``;
    ``dryrun`` is accepted for Runhouse's code and changes nothing (nothing is made here)."""
    path, system = resolve_aliases(path, system, fs, url)
    if path is None and system is None and name:
        return load_kind(name, Folder)
    if path is None:
        raise ConfigError("rh.folder needs a path (or the name of a saved folder)")
    return Folder(name=name, path=path, system=system, data_config=data_config or {})
