"""Incremental folder upload without rsync: for nodes that have no rsync, and for paramiko
connections. Like rsync's quick check it compares size and mtime, honours the same excludes and
per-folder ``.gitignore`` files, and deletes what was removed locally; an unchanged tree costs
one round trip (a manifest of the node's copy, made by python3 there).

The transfer itself is the caller's (``sftp -b`` through the OpenSSH master, or paramiko's
SFTP client): this module only decides what to send, delete and create.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import attrs

from rh_core.codetree import SyncFilter, local_manifest

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
