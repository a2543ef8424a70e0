"""Large buffers through shared memory, when client and server share a machine.

On the local cluster a 64 MiB array sent over loopback HTTP crosses the kernel four times (client
to server to worker and back) and is parsed in 64 KiB pieces on the way. Instead, a buffer of at
least :data:`MIN_SIZE` bytes is written once into a file under a private folder in ``/dev/shm``
and only its file name travels in the pickle body. The receiver maps the file (copy-on-write, so
its array is writable); the mapping lives as long as the array. A buffer that does not fit
(``/dev/shm`` full) travels inline; ``RH_SHM=off`` turns this off for clusters started afterwards.

A file's pages are used again: writing into pages a file already has costs half of writing into
new ones (the allocation, not the copy, dominates). A file goes through three names:

* ``b-<id>``: written, waiting for its receiver;
* ``h-<pid>-<id>``: taken, mapped by process ``pid``;
* ``f-<id>``: free again: the receiver's mapping is gone (its array was collected). The next
  writer of a buffer of about its size claims it by renaming it (atomic: one claimant wins).

A taken file is freed only when no process can still see it: a process that forks while it maps
taken files removes their names instead (the child's mappings keep the pages), and files held by a
process that ended are removed by the next writer. At most :func:`keep_bytes` of free files are
kept per folder (``RH_SHM_KEEP_MB``, default 512; 0 removes every file once taken, as before).
"""

from __future__ import annotations

import mmap
import os
import secrets
import weakref
from pathlib import Path

MIN_SIZE = 1 << 20
ROOT = Path("/dev/shm")

#: The files this process maps now: held name -> [folder, whether it may be reused].
_held: dict[str, list] = {}


def folder_for(cluster_key: str, create: bool = True) -> Path | None:
    """A private folder for one cluster's shared buffers; None where /dev/shm is missing or
    ``RH_SHM=off`` is set."""
    if os.environ.get("RH_SHM", "").lower() in ("0", "off", "no", "false"):
        return None
    if not ROOT.is_dir() or not os.access(ROOT, os.W_OK):
        return None
    path = ROOT / f"rh-{os.getuid()}-{cluster_key}"
    if not create and not path.exists():
        return None
    path.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_uid != os.getuid() or (path.stat().st_mode & 0o077):
        return None  # not ours, or readable by others: do not use it
    return path


def keep_bytes() -> int:
    """How many bytes of free files a folder keeps for reuse (``RH_SHM_KEEP_MB``)."""
    raw = os.environ.get("RH_SHM_KEEP_MB", "512")
    try:
        mib = int(raw)
    except ValueError:
        mib = -1
    if mib < 0:
        # Imported here: env workers load this module and need the errors only for bad input.
        from rh_core.errors import ConfigError

        raise ConfigError(f"RH_SHM_KEEP_MB must be a whole number of MiB (0 or more), got "
                          f"{raw!r:.40}; unset it for the default, 512")
    return mib << 20


def write(folder: str, data: memoryview) -> str:
    """Write ``data`` to a private file in ``folder`` (a free one of about its size when there
    is one, else a new one); returns its name (no folder)."""
    view = data.cast("B") if data.format != "B" else data
    name = f"b-{secrets.token_hex(12)}"
    path = os.path.join(folder, name)
    fd = _claim(folder, view.nbytes, path)
    if fd is None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if os.fstat(fd).st_size != view.nbytes:
            os.ftruncate(fd, view.nbytes)
        written = 0
        while written < view.nbytes:
            written += os.pwrite(fd, view[written:written + (1 << 30)], written)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    return name


def _claim(folder: str, size: int, path: str) -> int | None:
    """A free file of ``size`` to ``2 * size`` bytes renamed to ``path`` and opened for writing,
    or None. Removes on the way the files of processes that ended while they held them."""
    free = []
    with os.scandir(folder) as entries:
        for e in entries:
            if e.name.startswith("f-"):
                try:
                    n = e.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue  # claimed meanwhile
                if size <= n <= 2 * size:
                    free.append((n, e.path))
            elif e.name.startswith("h-") and not _alive(e.name.split("-")[1]):
                _unlink(e.path)
    for _, candidate in sorted(free):
        try:
            os.rename(candidate, path)
        except FileNotFoundError:
            continue  # another writer claimed it first
        return os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    return None


def take(folder: str, name: str, size: int) -> memoryview:
    """Map the file ``name`` of ``folder`` copy-on-write; it is freed for reuse when the mapping
    is collected."""
    if "/" in name or not name.startswith("b-"):
        raise ValueError(f"bad shared buffer name {name!r}")
    path = os.path.join(folder, name)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        keep = keep_bytes()
        if os.fstat(fd).st_size != size:
            raise ValueError(f"shared buffer {name} has the wrong size")
        mm = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except BaseException:
        _unlink(path)  # nothing of a buffer that cannot be taken is left behind
        raise
    finally:
        os.close(fd)
    held = f"h-{os.getpid()}-{name[2:]}"
    if keep == 0:
        _unlink(path)
        return memoryview(mm)
    try:
        os.rename(path, os.path.join(folder, held))
    except OSError:
        _unlink(path)
        return memoryview(mm)
    state = _held[held] = [folder, True]
    # Not at exit: the process's mappings live until it is gone (the next writer removes it).
    weakref.finalize(mm, _release, held, state).atexit = False
    return memoryview(mm)


def _release(held: str, state: list) -> None:
    """The mapping of ``held`` is gone: free the file for reuse (or remove it)."""
    _held.pop(held, None)
    folder, reuse = state
    path = os.path.join(folder, held)
    try:
        keep = keep_bytes()
    except ValueError:  # (ConfigError) said when the file was taken; here only do no harm
        keep = 0
    if reuse and _free_bytes(folder) + _size(path) <= keep:
        try:
            os.rename(path, os.path.join(folder, "f-" + held.split("-", 2)[2]))
            return
        except OSError:
            pass
    _unlink(path)


def _before_fork() -> None:
    # A child inherits the mappings: no file mapped now may be written again. (A copy of the
    # values: another thread's collected mapping may leave the dict meanwhile.)
    for state in list(_held.values()):
        state[1] = False


os.register_at_fork(before=_before_fork)


def discard(folder: str, names: list[str]) -> None:
    """Remove files a receiver never took (e.g. the call failed before reading them)."""
    for name in names:
        _unlink(os.path.join(folder, name))


def clear(folder: str | os.PathLike, remove: bool = False) -> None:
    """Remove every buffer file left in ``folder`` (and the folder itself with ``remove``)."""
    for pattern in ("b-*", "h-*", "f-*"):
        for p in Path(folder).glob(pattern):
            p.unlink(missing_ok=True)
    if remove:
        try:
            Path(folder).rmdir()
        except OSError:
            pass


def _free_bytes(folder: str) -> int:
    total = 0
    with os.scandir(folder) as entries:
        for e in entries:
            if e.name.startswith("f-"):
                try:
                    total += e.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    pass
    return total


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
