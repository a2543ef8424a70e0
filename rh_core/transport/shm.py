"""Large buffers through shared memory, when client and server share a machine.

On the local cluster a 64 MiB array sent over loopback HTTP crosses the kernel four times (client
to server to worker and back) and is parsed in 64 KiB pieces on the way. Instead, a buffer of at
least :data:`MIN_SIZE` bytes is written once into a file under a private folder in ``/dev/shm``
and only its file name travels in the pickle body. The receiver maps the file (copy-on-write, so
its array is writable) and removes the name at once; the mapping lives as long as the array.
A buffer that does not fit (``/dev/shm`` full) travels inline; ``RH_SHM=off`` turns this off
for clusters started afterwards.
"""

from __future__ import annotations

import mmap
import os
import secrets
from pathlib import Path

MIN_SIZE = 1 << 20
ROOT = Path("/dev/shm")


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


def write(folder: str, data: memoryview) -> str:
    """Write ``data`` to a new private file in ``folder``; returns its name (no folder)."""
    name = f"b-{secrets.token_hex(12)}"
    fd = os.open(os.path.join(folder, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = data.cast("B") if data.format != "B" else data
        written = 0
        while written < view.nbytes:
            written += os.write(fd, view[written:written + (1 << 30)])
    except BaseException:
        os.close(fd)
        os.unlink(os.path.join(folder, name))
        raise
    os.close(fd)
    return name


def take(folder: str, name: str, size: int) -> memoryview:
    """Map the file ``name`` of ``folder`` copy-on-write and remove its name."""
    if "/" in name or name.startswith("."):
        raise ValueError(f"bad shared buffer name {name!r}")
    path = os.path.join(folder, name)
    fd = os.open(path, os.O_RDONLY)
    try:
        if os.fstat(fd).st_size != size:
            raise ValueError(f"shared buffer {name} has the wrong size")
        mm = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
        os.unlink(path)
    return memoryview(mm)


def discard(folder: str, names: list[str]) -> None:
    """Remove files a receiver never took (e.g. the call failed before reading them)."""
    for name in names:
        try:
            os.unlink(os.path.join(folder, name))
        except FileNotFoundError:
            pass


def clear(folder: str | os.PathLike, remove: bool = False) -> None:
    """Remove every buffer file left in ``folder`` (and the folder itself with ``remove``)."""
    for p in Path(folder).glob("b-*"):
        p.unlink(missing_ok=True)
    if remove:
        try:
            Path(folder).rmdir()
        except OSError:
            pass
