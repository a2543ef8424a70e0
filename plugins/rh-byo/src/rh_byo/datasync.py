"""Folders, blobs and tables copied to and from the head node with rsync over the SSH master
connection: incremental (only what changed is sent), resumable (a file cut short is kept in a
``.rh-partial`` folder beside it and finished by the next copy, never under its final name), and
within the cluster's ``sync_limit_mb``. A node reached with paramiko, or one without rsync, gets
nothing here: rh then streams a tar through the server (``/folder/tar``)."""

from __future__ import annotations

import os
import posixpath
import shlex
import shutil
import subprocess
from pathlib import Path

from rh_byo.errors import NO_SPACE, SSHError, disk_full_error
from rh_byo.ssh import SSHNode
from rh_core.errors import ConfigError
from rh_core.transport.staging import disk_full

#: rsync's options for data: archive mode, and partial files kept aside to resume.
OPTIONS = ["-a", "--partial-dir=.rh-partial"]


def _usable(node) -> bool:
    return isinstance(node, SSHNode) and node.remote_rsync is not False and \
        shutil.which("rsync") is not None


def _rsync(node: SSHNode, source: str, dest: str, where: str, extra: list[str] = ()) -> bool:
    """Run rsync; False when the node turns out to have none."""
    ssh = "ssh " + " ".join(shlex.quote(o) for o in node.options())
    proc = subprocess.run(["rsync", *OPTIONS, *extra, "-e", ssh, source, dest],
                          capture_output=True, text=True)
    if proc.returncode == 0:
        return True
    if any(s in proc.stderr for s in ("rsync: command not found", "rsync: not found",
                                      "remote command not found")):
        node.remote_rsync = False
        return False
    if NO_SPACE in proc.stderr:
        if where == "node":
            raise disk_full_error(node, f"copying to {dest.split(':', 1)[-1]}")
        raise disk_full(Path(dest))
    if proc.returncode == 255 or "connection unexpectedly closed" in proc.stderr:
        raise node._explain(255, proc.stderr)
    raise SSHError(f"rsync between this machine and {node.target} failed: "
                   f"{proc.stderr.strip()[-1500:]}")


def copy_to(provider, local_path: str, remote_path: str, folder: bool) -> bool:
    """Copy the local folder (its contents into the folder ``remote_path``) or file (to the file
    ``remote_path``) to the head node; False when rsync cannot be used."""
    node = provider.node
    if not _usable(node):
        return False
    size = _size(local_path)
    limit_mb = provider.cluster.sync_limit_mb
    if size > limit_mb * 2**20:
        raise ConfigError(
            f"{local_path} holds {size / 2**20:.0f} MB to copy, above the cluster's limit of "
            f"{limit_mb} MB: raise the cluster's sync_limit_mb, or copy less at a time")
    source = local_path.rstrip("/") + "/" if folder else local_path
    dest = remote_path.rstrip("/") + "/" if folder else remote_path
    # The destination's folders are made by the same SSH command that starts rsync there.
    parent = shlex.quote(posixpath.dirname(remote_path.rstrip("/")))
    return _rsync(node, source, f"{node.target}:{dest}", "node",
                  [f"--rsync-path=mkdir -p {parent} && rsync"])


def _size(path: str) -> int:
    """Bytes of the files under ``path`` (or of the file)."""
    if not os.path.isdir(path):
        return os.lstat(path).st_size
    total = 0
    with os.scandir(path) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False):
                total += _size(e.path)
            elif not e.is_symlink():
                total += e.stat(follow_symlinks=False).st_size
    return total


def copy_from(provider, remote_path: str, local_path: str, folder: bool) -> bool:
    """Copy the head node's folder (into the local folder ``local_path``) or file (to the file
    ``local_path``) here; False when rsync cannot be used."""
    node = provider.node
    if not _usable(node):
        return False
    source = remote_path.rstrip("/") + "/" if folder else remote_path
    Path(local_path if folder else Path(local_path).parent).mkdir(parents=True, exist_ok=True)
    return _rsync(node, f"{node.target}:{source}", local_path, "here")
