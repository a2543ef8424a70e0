"""Copies of folders and files between places, each by its fastest safe way:

- on this machine (or with a cluster whose server shares this machine's files, like the local
  cluster): ``cp -a`` into a staging folder next to the destination, then renamed into place;
- with a cluster whose provider copies files itself (rh-byo: rsync over SSH): the provider's
  ``copy_to``/``copy_from``;
- with any other cluster: a tar stream with a checksum through its server's ``/folder/tar``;
- with object storage: fsspec's ``put``/``get`` of the files, downloads staged like the rest;
- between two other places: through a temporary folder here.

A symlink pointing out of a folder is refused before anything is copied, and nothing half-copied
ever carries a final name.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from rh_core import errors
from rh_core.resources.data.places import ClusterPlace, LocalPlace, StoragePlace
from rh_core.resources.data.systems import storage_errors
from rh_core.transport import archive
from rh_core.transport import folders as routes
from rh_core.transport.staging import disk_full, make_staging, move_into_place, staged


def shares_files(cluster) -> bool:
    """Whether the cluster's server reads and writes this process's files (same machine, same
    mount namespace, same user): the local cluster, ``rh.here`` inside a cluster. Asked once."""
    rt = cluster._runtime()
    if "data_machine" not in rt:
        rt["data_machine"] = routes.op(cluster.client(), "resolve", path="~")["machine"]
    return rt["data_machine"] == archive.machine_id()


def local_copy(src: str, dest: str, folder: bool, overwrite: bool = True,
               checked: bool = False) -> None:
    """Copy the folder (or file) ``src`` to ``dest`` on this machine (``checked``: its links
    were looked at already)."""
    if not os.path.lexists(src):
        raise LocalPlace().missing(src)
    if not checked:
        archive.walk(Path(src), sizes=False)  # refuses a symlink pointing out
    into = Path(dest) if folder else Path(dest).parent
    staging = make_staging(into)
    try:
        target = staging if folder else staging / Path(dest).name
        _cp(src, target, folder, into)
        move_into_place(staging, into, overwrite, count=False)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _cp(src: str, target: Path, folder: bool, dest: Path) -> None:
    if sys.platform.startswith("linux") and shutil.which("cp"):
        # GNU cp copies with copy_file_range (or a reflink), faster than anything done in Python.
        source = f"{src.rstrip('/')}/." if folder else src
        proc = subprocess.run(["cp", "-a", "--reflink=auto", source, str(target)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            if "No space left" in proc.stderr or "quota exceeded" in proc.stderr.lower():
                raise disk_full(dest)
            raise errors.TransferError(f"copying {src} to {dest} failed: {proc.stderr.strip()}")
        return
    try:
        if folder:
            shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(src, target, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise disk_full(dest) from None
        raise


def copy(src, src_path: str, dst, dst_path: str, folder: bool, overwrite: bool = True) -> str:
    """Copy ``src_path`` of the place ``src`` to ``dst_path`` of the place ``dst``; returns the
    destination's absolute path there. ``folder`` says whether it is a folder or one file."""
    dst_path = dst.abspath(dst_path)
    if isinstance(src, LocalPlace):
        _from_here(src_path, dst, dst_path, folder, overwrite)
    elif isinstance(dst, LocalPlace):
        _to_here(src, src_path, dst_path, folder, overwrite)
    elif isinstance(src, ClusterPlace) and isinstance(dst, ClusterPlace) and \
            src.cluster.short_name == dst.cluster.short_name:
        src.op("copy", path=src_path, dest=dst_path, overwrite=overwrite)
    elif isinstance(src, StoragePlace) and isinstance(dst, StoragePlace) and \
            src.protocol == dst.protocol:
        _within_storage(src, src_path, dst_path, folder, overwrite)
    else:
        tmp = tempfile.mkdtemp(prefix="rh-copy-")
        try:
            middle = os.path.join(tmp, "data")
            _to_here(src, src_path, middle, folder, True)
            _from_here(middle, dst, dst_path, folder, overwrite)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dst_path


def _from_here(src: str, dst, dst_path: str, folder: bool, overwrite: bool) -> None:
    if not os.path.lexists(src):
        raise LocalPlace().missing(src)
    if isinstance(dst, LocalPlace):
        local_copy(src, dst_path, folder, overwrite)
        return
    base, entries = archive.walk(Path(src), sizes=False)
    if isinstance(dst, StoragePlace):
        _put_storage(dst, base, entries, dst_path, folder, overwrite)
        return
    cluster = dst.cluster
    if shares_files(cluster):
        local_copy(src, dst_path, folder, overwrite, checked=True)
        return
    copy_to = getattr(cluster.provider, "copy_to", None)
    if overwrite and copy_to is not None and copy_to(src, dst_path, folder):
        return
    client = cluster.client()
    if folder:
        routes.upload(client, base, entries, dst_path, overwrite)
    else:
        routes.upload(client, base, entries, os.path.dirname(dst_path), overwrite,
                      as_name=os.path.basename(dst_path))


def _to_here(src, src_path: str, dest: str, folder: bool, overwrite: bool) -> None:
    if isinstance(src, StoragePlace):
        _get_storage(src, src_path, dest, folder, overwrite)
        return
    info = src.op("resolve", path=src_path, walk=True)
    if info["kind"] is None:
        raise errors.DataNotFoundError(f"no folder or file at {info['path']} on {src.where()}: "
                                       f"check the path (relative paths start at the home folder "
                                       f"of the server's user)")
    if info.get("escaping"):
        raise errors.UnsafePathError(f"on {src.where()}: {info['escaping']}")
    cluster = src.cluster
    if shares_files(cluster):
        local_copy(info["path"], dest, folder, overwrite, checked=True)
        return
    copy_from = getattr(cluster.provider, "copy_from", None)
    if overwrite and copy_from is not None and copy_from(info["path"], dest, folder):
        return
    into = Path(dest) if folder else Path(dest).parent
    if folder:
        routes.download(cluster.client(), info["path"], into, overwrite)
        return
    tmp = make_staging(into)  # fetched here under its own name, then renamed
    try:
        routes.download(cluster.client(), info["path"], tmp, True)
        (tmp / os.path.basename(info["path"])).rename(tmp / os.path.basename(dest))
        move_into_place(tmp, into, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _put_storage(dst: StoragePlace, base: Path, entries: list, url: str, folder: bool,
                 overwrite: bool) -> None:
    files = [e for e in entries if e[1] != "d"]
    if folder:
        local = [str(base / e[0]) for e in files]
        keys = [dst.key(dst.join(url, e[0])) for e in files]
    else:
        local, keys = [str(base / files[0][0])], [dst.key(url)]
    with storage_errors(url):
        if not overwrite:
            there = [k for k in keys if dst.fs.exists(k)]
            if there:
                raise errors.DataExistsError(f"already there: {', '.join(there[:3])}: pass "
                                             f"overwrite=True to replace; nothing was written")
        if local:
            dst.fs.put(local, keys)
        dst.fs.invalidate_cache()


def _get_storage(src: StoragePlace, url: str, dest: str, folder: bool, overwrite: bool) -> None:
    into = Path(dest) if folder else Path(dest).parent
    with staged(into) as staging:
        with storage_errors(url):
            root = src.key(url)
            if folder:
                found = src.fs.find(root)
                if not found and not src.fs.isdir(root):
                    raise errors.DataNotFoundError(f"nothing at {url}: check the path")
                names = [k[len(root):].lstrip("/") for k in found]
                src.fs.get(found, [str(staging / n) for n in names])
            else:
                src.fs.get_file(root, str(staging / Path(dest).name))
        move_into_place(staging, into, overwrite)


def _within_storage(place: StoragePlace, src_url: str, dst_url: str, folder: bool,
                    overwrite: bool) -> None:
    with storage_errors(src_url):
        src, dst = place.key(src_url), place.key(dst_url)
        pairs = [(k, dst + k[len(src):]) for k in place.fs.find(src)] if folder else [(src, dst)]
        if not overwrite and any(place.fs.exists(d) for _, d in pairs):
            raise errors.DataExistsError(f"something is already at {dst_url}: pass "
                                         f"overwrite=True to replace it")
        for s, d in pairs:
            place.fs.copy(s, d)
        place.fs.invalidate_cache()
