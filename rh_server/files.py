"""The node's filesystem as the folder routes see it: paths given by callers (``~`` expanded,
relative ones taken from the server user's home folder, as ``/commands`` runs there), and the
operations on them (resolve, list, make, move, copy, remove). Blocking: the routes run them in a
thread. Errors are rh's data errors; the routes answer them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rh_core.errors import DataExistsError, DataNotFoundError, UnsafePathError
from rh_core.transport import archive
from rh_core.transport.staging import INCOMING, move_into_place, staged


def node_path(raw) -> Path:
    """The absolute, normalized path a caller means by ``raw``."""
    if not isinstance(raw, str) or not raw or "\0" in raw:
        raise UnsafePathError(f"a path must be non-empty text, got {raw!r:.80}")
    path = os.path.expanduser(raw)
    if not os.path.isabs(path):
        path = os.path.join(Path.home(), path)
    return Path(os.path.normpath(path))


def _kind(path: Path) -> str | None:
    if path.is_symlink():
        return "link"
    if path.is_dir():
        return "dir"
    return "file" if path.exists() else None


def resolve(path: Path, walk: bool = False) -> dict:
    """Where ``path`` is and what it holds; with ``walk``, its size and the first symlink that
    points out of it."""
    out = {"path": str(path), "kind": _kind(path), "machine": archive.machine_id()}
    if walk and out["kind"] is not None:
        try:
            _, entries = archive.walk(path)
            out["escaping"] = None
        except UnsafePathError as e:
            entries, out["escaping"] = [], str(e)
        out["files"] = sum(1 for e in entries if e[1] != "d")
        out["bytes"] = sum(e[2] for e in entries)
    return out


def existing(path: Path, what: str = "folder") -> Path:
    """``path`` if it exists, else DataNotFoundError."""
    if not os.path.lexists(path):
        raise DataNotFoundError(f"no {what} at {path}: check the path (relative paths start at "
                                f"the home folder of the server's user)")
    return path


def ls(path: Path) -> list[dict]:
    """The folder's entries: ``name``, ``kind`` (``file``, ``dir``, ``link``) and ``size``."""
    existing(path)
    if not path.is_dir():
        st = path.lstat()
        return [{"name": path.name, "kind": _kind(path), "size": st.st_size}]
    out = []
    with os.scandir(path) as it:
        for e in it:
            if INCOMING in e.name:
                continue  # a copy in progress, or left by one that was interrupted
            kind = "link" if e.is_symlink() else "dir" if e.is_dir() else "file"
            out.append({"name": e.name, "kind": kind,
                        "size": e.stat(follow_symlinks=False).st_size if kind == "file" else 0})
    return sorted(out, key=lambda e: e["name"])


def mkdir(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise DataExistsError(f"{path} is a file, not a folder")
    path.mkdir(parents=True, exist_ok=True)


def move(path: Path, dest: Path, overwrite: bool) -> None:
    """Rename ``path`` to ``dest`` (on the same node); what is at ``dest`` is replaced only
    with ``overwrite``."""
    existing(path)
    if dest == path:
        return
    if os.path.commonpath([path, dest]) == str(path):
        raise UnsafePathError(f"cannot move {path} into itself ({dest})")
    if os.path.lexists(dest):
        if not overwrite:
            raise DataExistsError(f"{dest} already exists: pass overwrite=True to replace it")
        remove(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(dest))


def copy(path: Path, dest: Path, overwrite: bool) -> tuple[int, int]:
    """Copy the folder ``path`` into the folder ``dest``, or the file ``path`` to the file
    ``dest`` (through a staging folder next to it, so that nothing half-copied carries a final
    name)."""
    base, entries = archive.walk(existing(path))
    folder = path.is_dir() and not path.is_symlink()
    into = dest if folder else dest.parent
    with staged(into, full=dest) as staging:
        for name, kind, _ in entries:
            src, to = base / name, staging / (name if folder else dest.name)
            if kind == "d":
                to.mkdir(exist_ok=True)
            elif kind == "l":
                os.symlink(os.readlink(src), to)
            else:
                shutil.copy2(src, to)
        return move_into_place(staging, into, overwrite)


def remove(path: Path) -> bool:
    """Remove the file, link or folder at ``path``; whether there was one."""
    if not os.path.lexists(path):
        return False
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    return True


def rm(path: Path, names: list[str] | None, rh_home: Path) -> list[str]:
    """Remove ``path`` (or only ``names`` inside it); the paths removed."""
    targets = [path / archive.check_name(n, str(path)) for n in names] if names else [path]
    for t in targets:
        if archive.protected(t, rh_home):
            raise UnsafePathError(f"refusing to remove {t}: it is (or holds) the root, the home "
                                  f"folder or the rh home")
    return [str(t) for t in targets if remove(t)]
