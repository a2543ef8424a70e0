"""Which files of a code root are synced to a cluster's nodes: every file but the usual
leftovers (``SYNC_EXCLUDES``) and what the root's ``.gitignore`` files leave out, with git's
matching rules. Providers share it, whatever carries the files (rsync, sftp, a tar through a
port-forward)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pathspec

from rh_core.errors import ConfigError

#: Left out of every sync, at any depth (as rsync --exclude patterns).
SYNC_EXCLUDES = [".git/", "__pycache__/", "*.pyc", ".venv/", "venv/", ".tox/", "node_modules/",
                 ".mypy_cache/", ".pytest_cache/", ".ruff_cache/", "*.egg-info/"]


def sync_options(root: Path) -> list[str]:
    """rsync's options for what to leave out of ``root``: the excludes and its .gitignore."""
    extra = [f"--exclude={e}" for e in SYNC_EXCLUDES]
    if (root / ".gitignore").exists():
        extra.append("--filter=:- .gitignore")
    return extra


def synced_size(root: Path, extra: list[str]) -> int:
    """The bytes of the files of ``root`` a sync with ``extra`` sends (what is left out does
    not count, so a .gitignore brings a tree under the limit)."""
    manifest = local_manifest(root, SyncFilter(root, extra))
    return sum(entry[1] for entry in manifest.values() if entry[0] == "f")



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


def shipped(root: Path, limit_mb: int, into: str) -> tuple[dict[str, list], str, str]:
    """What a provider that ships a code root itself (as one tar) needs: the manifest of the
    files synced, its digest (the copy there is current when it has the same), and the folder
    name the copy takes there (``<name>-<hash of the local path>``). A root above ``limit_mb``
    is refused with ConfigError saying how to shrink it (``into``: where it was to go)."""
    manifest = local_manifest(root, SyncFilter(root, sync_options(root)))
    size = sum(e[1] for e in manifest.values() if e[0] == "f")
    if size > limit_mb * 2**20:
        raise ConfigError(f"{root} holds {size / 2**20:.0f} MB to sync into {into}, above "
                          f"{limit_mb} MB: add a .gitignore that leaves data and build output out")
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    return manifest, digest, f"{root.name}-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"
