"""What folders, blobs and tables share: a path in a system (this machine, object storage or a
cluster), the place that reads and writes it, copies to other systems (``.to()``), and how they
pickle for a call (see :mod:`arrival`)."""

from __future__ import annotations

import os
from typing import Any

import attrs

from rh_core.errors import ConfigError
from rh_core.paths import rh_home
from rh_core.resources.base import Resource
from rh_core.resources.cluster import Cluster
from rh_core.resources.data import arrival, systems, transfer
from rh_core.resources.data.places import place_for
from rh_core.resources.destination import destination
from rh_core.transport import archive


@attrs.define(kw_only=True, slots=False)
class Data(Resource):
    """A path in a system. Subclasses say whether it is a folder (``folder = True``) or a file."""

    #: Whether the path is a folder (folders, tables) or one file (blobs).
    folder = True

    #: The folder or file. On this machine an absolute path; on a cluster, relative paths start
    #: at the home folder of the server's user; in object storage a URL (``s3://bucket/key``).
    path: str | None = None
    #: Where the path is: ``"file"`` (this machine; ``"here"`` is accepted), an object storage
    #: protocol (``"s3"``, ``"gs"``...), or a cluster (a Cluster, its name, its config).
    system: Any = attrs.field(default="file", converter=systems.as_system)
    #: Options of the storage filesystem (fsspec's, e.g. ``{"endpoint_url": URL}``); never
    #: credentials, which come from the provider's environment variables or profile.
    data_config: dict = attrs.field(factory=dict, converter=systems.check_config)

    def __attrs_post_init__(self):
        if self.path is None:
            return
        scheme, _ = systems.split_url(self.path)
        if scheme == "file":
            self.path = systems.split_url(self.path)[1]
        elif scheme and self.system == "file":
            self.system = scheme  # rh.folder(path="s3://bucket/data")
        if self.system == "file":
            self.path = os.path.abspath(os.path.expanduser(self.path))
        elif not isinstance(self.system, Cluster):
            self.path = systems.storage_url(self.system, self.path)

    # ------------------------------------------------------------------ where

    @property
    def place(self):
        """What reads and writes this resource's files."""
        rt = self.__dict__.setdefault("_rt", {})
        if "place" not in rt:
            rt["place"] = place_for(self.system, self.data_config)
        return rt["place"]

    def _where(self) -> str:
        return self.place.where()

    def _need_path(self) -> str:
        if not self.path:
            raise ConfigError(f"this {self.resource_type} has no path yet: give path=")
        return self.path

    def exists_in_system(self) -> bool:
        """Whether the path exists in its system."""
        kind = self.place.kind_of(self._need_path())
        return kind is not None and (kind == "dir") == self.folder

    def rm(self) -> None:
        """Delete the files (nothing happens when they are not there)."""
        self.place.remove(self._need_path())

    # ------------------------------------------------------------------ copies

    def _identity(self) -> str:
        where = self.system.short_name if isinstance(self.system, Cluster) else self.system
        if where == "file":
            where = archive.machine_id()
        return f"{where}:{self.path}"

    def _default_path(self, place) -> str:
        """Where ``.to(system)`` puts the copy without a path: under the rh home of the
        destination, by the source's name and a digest of where it is (so copies of different
        folders never mix, and copying again updates the same copy)."""
        base = os.path.basename(self._need_path().rstrip("/")) or self.resource_type
        name = f"{base}-{systems.digest(self._identity())}"
        if place.kind == "cluster":
            return place.op("resolve", name=name)["path"]
        if place.kind == "file":
            return str(rh_home() / "data" / name)
        raise ConfigError(f"give the path in {place.where()} to copy to: "
                          f".to({place.where()!r}, path='{place.where()}://bucket/prefix')")

    def to(self, system: Any, path: str | None = None, data_config: dict | None = None,
           overwrite: bool = True, *, url: str | None = None):
        """A copy in ``system`` (``"here"``, ``"s3"``..., a cluster) at ``path`` (by default
        under the rh home there; ``url=`` is Runhouse's older name); files already at the path
        are replaced (``overwrite``)."""
        if url is not None:
            if path is not None and path != url:
                raise ConfigError("give the path once, as path= (or url=, Runhouse's older name)")
            path = url
        system = systems.as_system(system)
        config = systems.check_config(data_config if data_config is not None else
                                      (self.data_config if system == self.system else {}))
        dst = place_for(system, config)
        if path is not None and system == "file":
            path = os.path.abspath(os.path.expanduser(path))
        elif path is not None and dst.kind == "storage":
            path = systems.storage_url(system, path)
        dest = path if path is not None else self._default_path(dst)
        final = transfer.copy(self.place, self._need_path(), dst, dest, self.folder, overwrite)
        new = attrs.evolve(self, system=system, path=final, data_config=config)
        new.__dict__["_rt"] = {"place": dst}
        return new

    # ------------------------------------------------------------------ pickling

    def __reduce_ex__(self, protocol):
        target = destination()
        if target is None:  # pickled as itself
            return super().__reduce_ex__(protocol)
        return arrival.arrive, (arrival.record_for(self, target),)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_rt"}

    def config(self) -> dict[str, Any]:
        out = super().config()
        if isinstance(self.system, Cluster):
            out["system"] = self.system.config()
        return out
