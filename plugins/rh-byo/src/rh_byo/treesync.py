"""Incremental folder upload without rsync: for nodes that have no rsync, and for paramiko
connections. Like rsync's quick check it compares size and mtime, honours the same excludes and
per-folder ``.gitignore`` files, and deletes what was removed locally; an unchanged tree costs
one round trip (a manifest of the node's copy, made by python3 there).

The transfer itself is the caller's (``sftp -b`` through the OpenSSH master, or paramiko's
SFTP client): this module only decides what to send, delete and create.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
from pathlib import Path

import attrs
import pathspec

#: Run by python3 on the node: the destination's entries as JSON (created if missing).
#: ``f`` [size, mtime] for files, ``d`` for folders, ``l`` [target] for symlinks.
REMOTE_MANIFEST = r"""
import json, os, stat, sys
root = os.path.expanduser(sys.argv[1])
os.makedirs(root, exist_ok=True)
out = {}
def walk(d, rel):
    for n in sorted(os.listdir(d)):
        p, r = os.path.join(d, n), rel + n
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if stat.S_ISLNK(st.st_mode):
            out[r] = ["l", os.readlink(p)]
        elif stat.S_ISDIR(st.st_mode):
            out[r] = ["d"]
            walk(p, r + "/")
        elif stat.S_ISREG(st.st_mode):
            out[r] = ["f", st.st_size, int(st.st_mtime)]
walk(root, "")
print(json.dumps({"root": os.path.abspath(root), "entries": out}))
"""


class SyncFilter:
    """What rsync's ``--exclude=PATTERN`` and ``--filter=:- .gitignore`` arguments leave out,
    with git's matching rules (``pathspec``): an exclude applies at every level, and each
    folder's ``.gitignore`` applies below that folder."""

    def __init__(self, root: Path, extra: list[str]):
        self.root = root
        self.excludes = pathspec.GitIgnoreSpec.from_lines(
            [e.split("=", 1)[1] for e in extra if e.startswith("--exclude=")])
        self.gitignore = any(e.replace(" ", "") == "--filter=:-.gitignore" for e in extra)
        self._specs: dict[str, object] = {}
        self._cache: dict[tuple[str, bool], bool] = {}

    def _spec(self, folder: str):
        if folder not in self._specs:
            f = self.root / folder / ".gitignore"
            spec = None
            if self.gitignore and f.is_file():
                spec = pathspec.GitIgnoreSpec.from_lines(f.read_text(errors="replace").splitlines())
            self._specs[folder] = spec
        return self._specs[folder]

    def excluded(self, rel: str, is_dir: bool) -> bool:
        """Whether ``rel`` (a path relative to the root, '/'-separated) is left out, itself or
        through one of its folders."""
        key = (rel, is_dir)
        if key not in self._cache:
            parent, _, _ = rel.rpartition("/")
            self._cache[key] = (bool(parent) and self.excluded(parent, True)) or self._matches(
                rel, is_dir)
        return self._cache[key]

    def _matches(self, rel: str, is_dir: bool) -> bool:
        path = rel + "/" if is_dir else rel
        if self.excludes.match_file(path):
            return True
        parts = rel.split("/")
        for i in range(len(parts)):
            spec = self._spec("/".join(parts[:i]))
            if spec is not None and spec.match_file("/".join(parts[i:]) + ("/" if is_dir else "")):
                return True
        return False


def local_manifest(root: Path, flt: SyncFilter) -> dict[str, list]:
    """The entries of the local folder that are synced, in the remote manifest's format."""
    out: dict[str, list] = {}

    def walk(d: Path, rel: str) -> None:
        for n in sorted(os.listdir(d)):
            p, r = d / n, rel + n
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                if not flt.excluded(r, False):
                    out[r] = ["l", os.readlink(p)]
            elif stat.S_ISDIR(st.st_mode):
                if not flt.excluded(r, True):
                    out[r] = ["d"]
                    walk(p, r + "/")
            elif stat.S_ISREG(st.st_mode) and not flt.excluded(r, False):
                out[r] = ["f", st.st_size, int(st.st_mtime)]

    walk(root, "")
    return out


@attrs.define
class Plan:
    """What to do on the node, in this order: delete files and links, remove folders (deepest
    first), make folders (shallowest first), upload files, make links."""

    delete: list[str] = attrs.Factory(list)
    rmdir: list[str] = attrs.Factory(list)
    mkdir: list[str] = attrs.Factory(list)
    put: list[str] = attrs.Factory(list)
    link: list[tuple[str, str]] = attrs.Factory(list)
    #: Bytes the uploads add (to tell a full disk from another failure).
    put_bytes: int = 0

    @property
    def empty(self) -> bool:
        return not (self.delete or self.rmdir or self.mkdir or self.put or self.link)


def plan(local: dict[str, list], remote: dict[str, list], flt: SyncFilter) -> Plan:
    """The changes that make ``remote`` like ``local``; excluded remote entries stay (as with
    rsync --delete without --delete-excluded)."""
    p = Plan()
    gone: set[str] = set()
    for rel, r in remote.items():
        if flt.excluded(rel, r[0] == "d"):
            continue
        mine = local.get(rel)
        if mine is None or mine[0] != r[0] or (r[0] == "l" and mine[1] != r[1]):
            gone.add(rel)
            (p.rmdir if r[0] == "d" else p.delete).append(rel)
    for rel, mine in local.items():
        theirs = None if rel in gone else remote.get(rel)
        if mine[0] == "d" and theirs is None:
            p.mkdir.append(rel)
        elif mine[0] == "f" and theirs != mine:
            p.put.append(rel)
            p.put_bytes += mine[1]
        elif mine[0] == "l" and theirs is None:
            p.link.append((rel, mine[1]))
    p.rmdir.sort(key=lambda r: -r.count("/"))
    p.mkdir.sort(key=lambda r: r.count("/"))
    return p


def remote_manifest(node, dest: str) -> tuple[str, dict[str, list]]:
    """``(absolute destination, its entries)`` on the node: one SSH command."""
    proc = node.run(f"python3 -c {_quote(REMOTE_MANIFEST)} {_quote(dest)}", timeout=300)
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return data["root"], data["entries"]


def upload(node, source: str, dest: str, extra: list[str] | None, apply) -> str:
    """Make ``dest`` on the node a copy of the local folder ``source``: ``apply(plan, local
    root, absolute remote root)`` carries out what changed. Returns rsync-like stats."""
    src = Path(source)
    flt = SyncFilter(src, extra or [])
    local = local_manifest(src, flt)
    root, remote = remote_manifest(node, dest)
    p = plan(local, remote, flt)
    if not p.empty:
        apply(p, src, root)
    return stats(p)


def stats(p: Plan) -> str:
    """A summary in the words of rsync --stats (what callers read the count from)."""
    return (f"Number of regular files transferred: {len(p.put)}\n"
            f"Number of deleted files: {len(p.delete) + len(p.rmdir)}\n")


def _quote(s: str) -> str:
    return shlex.quote(s)
