"""Blobs: one file of bytes (``rh.blob(data=b"...")``) on this machine, in object storage or on a
cluster; ``b.data`` reads it, ``b.write()`` replaces it, ``.to()`` copies it. Passed to a function
on a cluster, a blob arrives as its bytes."""

from __future__ import annotations

import posixpath
import uuid
from typing import Any, ClassVar

import attrs

from rh_core.errors import ConfigError
from rh_core.paths import rh_home
from rh_core.resources.data.common import Data
from rh_core.resources.data.folder import load_kind, resolve_aliases


@attrs.define(kw_only=True, slots=False)
class Blob(Data):
    """A file of bytes in a system: this machine, object storage, or a cluster's node."""

    resource_type: ClassVar[str] = "blob"
    folder = False

    @property
    def data(self) -> bytes:
        """The blob's bytes, read from where it is."""
        return self.place.read(self._need_path())

    def write(self, data: bytes | str) -> Blob:
        """Replace the blob's bytes (written under a temporary name, then renamed; in object
        storage, as one object)."""
        if isinstance(data, str):
            data = data.encode()
        elif isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif not isinstance(data, bytes):
            raise ConfigError(f"a blob holds bytes (or text), got a {type(data).__name__}: "
                              f"pickle.dumps(obj) for an object")
        path = self._need_path()
        self.place.write(posixpath.dirname(path), {posixpath.basename(path): data}, True)
        return self


def default_path(place, kind: str) -> str:
    """A new path for a blob or table made without one: under the rh home there."""
    name = f"{kind}s/{uuid.uuid4().hex}"
    if place.kind == "file":
        return str(rh_home() / "data" / name)
    if place.kind == "cluster":
        return place.op("resolve", name=name)["path"]
    raise ConfigError(f"give the {kind}'s path in {place.where()}: "
                      f"path='{place.where()}://bucket/key'")


def blob(data: bytes | str | None = None, name: str | None = None, path: str | None = None,
         system: Any = None, dryrun: bool = False, data_config: dict | None = None, *,
         fs: Any = None, url: str | None = None) -> Blob:
    """A blob: ``rh.blob(data=b"...")`` writes a new file (under the rh home when no ``path`` is
    given) on this machine, a cluster (``system=``) or object storage (``system="s3"`` with a
    ``s3://`` path); without data, a blob at ``path``; ``rh.blob(name=...)`` loads a saved one.
    ``fs=``/``url=``/``dryrun`` as for :func:`folder`."""
    path, system = resolve_aliases(path, system, fs, url)
    if data is None and path is None and system is None and name:
        return load_kind(name, Blob)
    made = Blob(name=name, path=path, system=system, data_config=data_config or {})
    if made.path is None:
        if data is None:
            raise ConfigError("rh.blob needs data=, a path=, or the name of a saved blob")
        made.path = default_path(made.place, "blob")
    if data is not None:
        made.write(data)
    return made
