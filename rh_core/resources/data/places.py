"""The operations folders, blobs and tables need from the place their files are in, the same for
each: this machine's files (the standard library), object storage (fsspec) and a cluster's node
(its server's ``/folder`` routes). Copies between places are :mod:`transfer`'s."""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import tempfile
from pathlib import Path

from rh_core import errors
from rh_core.paths import rh_home
from rh_core.resources.cluster import Cluster
from rh_core.resources.data import systems
from rh_core.transport import archive
from rh_core.transport import folders as routes
from rh_core.transport.staging import INCOMING, disk_full


class LocalPlace:
    """This machine's files."""

    kind = "file"

    def where(self) -> str:
        return "this machine"

    def abspath(self, path: str) -> str:
        return os.path.abspath(os.path.expanduser(path))

    def join(self, path: str, name: str) -> str:
        return os.path.join(path, name)

    def kind_of(self, path: str) -> str | None:
        p = Path(path)
        return "link" if p.is_symlink() else "dir" if p.is_dir() else "file" if p.exists() else None

    def missing(self, path: str) -> errors.DataNotFoundError:
        return errors.DataNotFoundError(f"no folder or file at {path} on this machine: check the "
                                        f"path, or make it first")

    def ls(self, path: str) -> list[dict]:
        if not os.path.lexists(path):
            raise self.missing(path)
        if not os.path.isdir(path):
            return [{"name": os.path.basename(path), "kind": self.kind_of(path),
                     "size": os.lstat(path).st_size}]
        out = []
        with os.scandir(path) as it:
            for e in it:
                if INCOMING in e.name:
                    continue
                kind = "link" if e.is_symlink() else "dir" if e.is_dir() else "file"
                out.append({"name": e.name, "kind": kind,
                            "size": e.stat(follow_symlinks=False).st_size if kind == "file" else 0})
        return sorted(out, key=lambda e: e["name"])

    def read(self, path: str) -> bytes:
        try:
            return Path(path).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise self.missing(path) from None

    def write(self, folder: str, files: dict[str, bytes], overwrite: bool) -> None:
        """Each file written to a temporary name, then renamed: never half-written."""
        targets = {Path(folder) / archive.check_name(n, folder): data for n, data in files.items()}
        there = [str(t) for t in targets if os.path.lexists(t)]
        if there and not overwrite:
            raise errors.DataExistsError(f"already there: {', '.join(there[:3])}: pass "
                                         f"overwrite=True to replace; nothing was written")
        try:
            for target, data in targets.items():
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{target.name}{INCOMING}",
                                           dir=target.parent)
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                    os.chmod(tmp, 0o666 & ~_umask())
                    os.replace(tmp, target)
                except BaseException:
                    os.unlink(tmp)
                    raise
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise disk_full(Path(folder)) from None
            raise

    def mkdir(self, path: str) -> None:
        if os.path.exists(path) and not os.path.isdir(path):
            raise errors.DataExistsError(f"{path} is a file, not a folder")
        os.makedirs(path, exist_ok=True)

    def move(self, path: str, dest: str, overwrite: bool) -> None:
        if not os.path.lexists(path):
            raise self.missing(path)
        if os.path.lexists(dest) and os.path.abspath(dest) != os.path.abspath(path):
            if not overwrite:
                raise errors.DataExistsError(f"{dest} already exists: pass overwrite=True to "
                                             f"replace it")
            self.remove(dest)
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        shutil.move(path, dest)

    def remove(self, path: str, names: list[str] | None = None) -> bool:
        targets = [os.path.join(path, archive.check_name(n, path)) for n in names] if names \
            else [path]
        for t in targets:
            if archive.protected(Path(t), rh_home()):
                raise errors.UnsafePathError(f"refusing to remove {t}: it is (or holds) the root, "
                                             f"the home folder or the rh home")
        found = False
        for t in targets:
            if os.path.isdir(t) and not os.path.islink(t):
                shutil.rmtree(t)
                found = True
            elif os.path.lexists(t):
                os.unlink(t)
                found = True
        return found


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class StoragePlace:
    """Object storage through fsspec; paths are URLs (``s3://bucket/key``)."""

    kind = "storage"

    def __init__(self, protocol: str, config: dict | None = None):
        self.protocol, self.config = protocol, dict(config or {})
        self._fs = None

    @property
    def fs(self):
        if self._fs is None:
            self._fs = systems.filesystem(self.protocol, self.config)
        return self._fs

    def where(self) -> str:
        return self.protocol

    def abspath(self, path: str) -> str:
        return systems.storage_url(self.protocol, path)

    def key(self, url: str) -> str:
        """The filesystem's path of ``url`` (``bucket/key``)."""
        return systems.split_url(url)[1].strip("/")

    def join(self, path: str, name: str) -> str:
        return f"{path.rstrip('/')}/{name}"

    def kind_of(self, path: str) -> str | None:
        with systems.storage_errors(path):
            try:
                info = self.fs.info(self.key(path))
            except FileNotFoundError:
                return None
        return "dir" if info.get("type") == "directory" else "file"

    def ls(self, path: str) -> list[dict]:
        with systems.storage_errors(path):
            entries = self.fs.ls(self.key(path), detail=True)
        out = [{"name": e["name"].rstrip("/").rsplit("/", 1)[-1],
                "kind": "dir" if e.get("type") == "directory" else "file",
                "size": e.get("size") or 0} for e in entries]
        return sorted(out, key=lambda e: e["name"])

    def read(self, path: str) -> bytes:
        with systems.storage_errors(path):
            return self.fs.cat_file(self.key(path))

    def write(self, folder: str, files: dict[str, bytes], overwrite: bool) -> None:
        """Each object is put whole (an object store never shows half an upload)."""
        keys = {self.key(self.join(folder, archive.check_name(n, folder))): d
                for n, d in files.items()}
        with systems.storage_errors(folder):
            there = [k for k in keys if self.fs.exists(k)] if not overwrite else []
            if there:
                raise errors.DataExistsError(f"already there: {', '.join(there[:3])}: pass "
                                             f"overwrite=True to replace; nothing was written")
            for k, data in keys.items():
                self.fs.pipe_file(k, data)

    def mkdir(self, path: str) -> None:
        with systems.storage_errors(path):
            self.fs.makedirs(self.key(path), exist_ok=True)

    def move(self, path: str, dest: str, overwrite: bool) -> None:
        with systems.storage_errors(path):
            if self.fs.exists(self.key(dest)):
                if not overwrite:
                    raise errors.DataExistsError(f"{dest} already exists: pass overwrite=True")
                self.fs.rm(self.key(dest), recursive=True)
            self.fs.mv(self.key(path), self.key(dest), recursive=True)

    def remove(self, path: str, names: list[str] | None = None) -> bool:
        targets = [self.join(path, archive.check_name(n, path)) for n in names] if names \
            else [path]
        found = False
        with systems.storage_errors(path):
            for t in targets:
                if self.fs.exists(self.key(t)):
                    self.fs.rm(self.key(t), recursive=True)
                    found = True
            self.fs.invalidate_cache()
        return found


class ClusterPlace:
    """The files of a cluster's head node, through its server."""

    kind = "cluster"

    def __init__(self, cluster: Cluster):
        self.cluster = cluster

    @property
    def client(self):
        return self.cluster.client()

    def where(self) -> str:
        return f"cluster {self.cluster.short_name!r}"

    def op(self, operation: str, **spec) -> dict:
        return routes.op(self.client, operation, **spec)

    def abspath(self, path: str) -> str:
        if path.startswith("/"):  # no need to ask the server
            return posixpath.normpath(path)
        return self.op("resolve", path=path)["path"]

    def join(self, path: str, name: str) -> str:
        return f"{path.rstrip('/')}/{name}"

    def kind_of(self, path: str) -> str | None:
        return self.op("resolve", path=path)["kind"]

    def ls(self, path: str) -> list[dict]:
        return self.op("ls", path=path)["entries"]

    def read(self, path: str) -> bytes:
        got = routes.read(self.client, path)
        if len(got) != 1:
            raise errors.ConfigError(f"{path} on {self.where()} is a folder, not a file")
        return next(iter(got.values()))

    def write(self, folder: str, files: dict[str, bytes], overwrite: bool) -> None:
        routes.upload_contents(self.client, files, folder, overwrite)

    def mkdir(self, path: str) -> None:
        self.op("mkdir", path=path)

    def move(self, path: str, dest: str, overwrite: bool) -> None:
        self.op("mv", path=path, dest=dest, overwrite=overwrite)

    def remove(self, path: str, names: list[str] | None = None) -> bool:
        return bool(self.op("rm", path=path, names=names)["removed"])


def place_for(system, config: dict | None = None):
    """The place of ``system`` (``"file"``, a storage protocol, or a Cluster)."""
    if isinstance(system, Cluster):
        return ClusterPlace(system)
    if system == "file":
        return LocalPlace()
    return StoragePlace(system, config)
