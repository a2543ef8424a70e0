"""Staging folders: what arrives is written next to its destination first and moved into place
only when whole, so a failed or killed copy leaves nothing under a final name; a full disk
is a clear :class:`DiskFullError`; staging folders a killed copy left are swept by the next copy
to the same place. Stdlib only."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from rh_core.errors import DataExistsError, DiskFullError

#: Staging folders are named ``.<name>.rh-incoming-<pid>-<random>`` next to their destination.
INCOMING = ".rh-incoming-"
#: A staging folder whose process is gone is swept by the next copy to the same place once it
#: has not changed for this long (seconds).
STALE_AFTER = 600


def _no_space(e: OSError) -> bool:
    return e.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full(path: Path, where: str = "") -> DiskFullError:
    """The error for writing under ``path`` failing for lack of space, with the free space."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
        space = f"{st.f_bavail * st.f_frsize // 2**20} MB free of {st.f_blocks * st.f_frsize // 2**20} MB"
    except OSError:
        space = "free space unknown"
    return DiskFullError(f"the disk holding {path}{where} is full ({space}): nothing was written "
                         f"under the final names. Free space there, or copy to another path.")


def make_staging(dest: Path) -> Path:
    """A new empty folder next to ``dest`` (same disk, so moving from it is a rename). Staging
    folders of earlier copies to ``dest`` whose process died (killed mid-copy) go first."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(dest)
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}{INCOMING}{os.getpid()}-", dir=dest.parent))


def sweep_stale(dest: Path) -> list[Path]:
    """Remove the staging folders next to ``dest`` left by processes that are gone (their PID
    is in the name) and unchanged for :data:`STALE_AFTER` seconds; the folders removed."""
    prefix = f".{dest.name}{INCOMING}"
    gone = []
    try:
        entries = list(os.scandir(dest.parent))
    except OSError:
        return gone
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
            continue
        pid = entry.name[len(prefix):].split("-", 1)[0]
        try:
            if not pid.isdigit() or _alive(int(pid)) or \
                    now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER:
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        gone.append(Path(entry.path))
    return gone


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def staged(dest: Path, full: Path | None = None) -> Iterator[Path]:
    """A staging folder next to ``dest`` for the ``with`` body to fill and move into place;
    removed when the body ends, whatever is left in it; a full disk raised as DiskFullError
    about ``full`` (default ``dest``)."""
    staging = make_staging(dest)
    try:
        yield staging
    except OSError as e:
        if _no_space(e):
            raise disk_full(full or dest) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def move_into_place(staging: Path, dest: Path, overwrite: bool = True, count: bool = True
                    ) -> tuple[int, int]:
    """Move everything in ``staging`` into the folder ``dest``: ``(files, bytes)`` moved (0, 0
    without ``count``, which saves a walk). New folders move whole; files replace files of the
    same name (or, without ``overwrite``, DataExistsError is raised before anything moves)."""
    moves: list[tuple[Path, Path, bool]] = []  # (from, to, replaces)
    files = size = 0
    if not os.path.lexists(dest):
        moves.append((staging, dest, False))
    elif not dest.is_dir():
        raise DataExistsError(f"{dest} is a file, not a folder: choose another path, or remove it")
    else:
        _plan(staging, dest, moves)
    clashes = [str(to) for _, to, replaces in moves if replaces]
    if clashes and not overwrite:
        raise DataExistsError(f"{len(clashes)} file(s) are already there ({', '.join(clashes[:3])}"
                              f"{', ...' if len(clashes) > 3 else ''}): pass overwrite=True to "
                              f"replace them; nothing was written")
    for src, _, _ in moves if count else ():
        for f, s in _files_in(src):
            files, size = files + f, size + s
    for src, to, _ in moves:
        if src == staging:
            os.rename(src, to)
            staging.mkdir()  # the caller removes it
        else:
            os.replace(src, to)
    return files, size


def _plan(src: Path, dst: Path, moves: list) -> None:
    with os.scandir(src) as it:
        for entry in it:
            to = dst / entry.name
            here_dir = entry.is_dir(follow_symlinks=False)
            if not os.path.lexists(to):
                moves.append((Path(entry.path), to, False))
            elif here_dir and to.is_dir() and not to.is_symlink():
                _plan(Path(entry.path), to, moves)
            elif here_dir or (to.is_dir() and not to.is_symlink()):
                raise DataExistsError(f"{to} is a {'file' if here_dir else 'folder'} where the "
                                      f"copy has a {'folder' if here_dir else 'file'}: remove it "
                                      f"first; nothing was written")
            else:
                moves.append((Path(entry.path), to, True))


def _files_in(path: Path) -> Iterator[tuple[int, int]]:
    if path.is_dir() and not path.is_symlink():
        for dirpath, _, names in os.walk(path):
            for n in names:
                yield 1, os.lstat(os.path.join(dirpath, n)).st_size
    else:
        yield 1, path.lstat().st_size
