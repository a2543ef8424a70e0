"""Folders as tar streams with a checksum, and what arrives put safely into place.

A stream is a tar archive (pax) immediately followed by the 32-byte SHA-256 of the archive's
bytes. The sender walks the folder first, so a symlink pointing out of it is refused before
anything is sent. The receiver extracts into a staging folder next to the destination, refusing
any member that would land outside it (``..``, absolute names, links pointing out: Python's
``tarfile`` data filter), checks the digest, and only then moves the files into place: an
interrupted, cut or changed stream leaves nothing under a final name. The server's folder routes
and the client use the same code both ways. Stdlib only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import queue
import shutil
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from rh_core.errors import DataExistsError, DiskFullError, TransferError, UnsafePathError

#: Bytes of the SHA-256 digest that ends every stream.
TRAILER = 32
CHUNK = 1 << 20
#: Staging folders are named ``.<name>.rh-incoming-<pid>-<random>`` next to their destination.
INCOMING = ".rh-incoming-"
#: A staging folder whose process is gone is swept by the next copy to the same place once it
#: has not changed for this long (seconds).
STALE_AFTER = 600
CONTENT_TYPE = "application/x-rh-tar"


def machine_id() -> str:
    """Who sees this filesystem: the boot, the mount namespace and the user. Two processes with
    the same id read and write the same files as each other (a local cluster and its client)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        mounts = os.readlink("/proc/self/ns/mnt")
    except OSError:  # not Linux: the host name stands for the machine
        boot, mounts = os.uname().nodename, ""
    return f"{boot}/{mounts}/{os.getuid()}"


# ------------------------------------------------------------------ names and trees


def check_name(name: str, folder: str = "the folder") -> str:
    """``name`` (a file's name inside a folder, '/'-separated) if it stays inside it."""
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith("/") or ".." in parts or "\0" in name:
        raise UnsafePathError(f"the name {name!r} would land outside {folder}: give a relative "
                              f"name without '..' (like 'a.txt' or 'sub/a.txt')")
    return "/".join(p for p in parts if p not in ("", "."))


def escapes(root: str, rel: str, target: str) -> bool:
    """Whether the symlink ``rel`` (inside ``root``) pointing at ``target`` leads out of it."""
    if os.path.isabs(target):
        return True
    where = os.path.normpath(os.path.join(root, os.path.dirname(rel), target))
    return os.path.commonpath([root, where]) != root


def walk(path: Path, sizes: bool = True) -> tuple[Path, list[tuple[str, str, int]]]:
    """``(base, entries)``: the entries of the folder ``path`` relative to it (or, for a file,
    the file relative to its folder), as ``(name, kind, size)`` with kind ``d``, ``f`` or ``l``,
    folders before what they hold (sizes 0 without ``sizes``, which saves a stat per file). A
    symlink pointing out of the folder raises."""
    if not path.is_dir() or path.is_symlink():
        st = path.lstat()
        return path.parent, [(path.name, "l" if path.is_symlink() else "f", st.st_size)]
    root = os.path.abspath(path)
    out: list[tuple[str, str, int]] = []

    def visit(folder: str, rel_dir: str) -> None:
        with os.scandir(folder) as it:
            found = sorted(it, key=lambda e: e.name)
        for e in found:
            rel = rel_dir + e.name
            if e.is_symlink():
                target = os.readlink(e.path)
                if escapes(root, rel, target):
                    raise UnsafePathError(
                        f"{e.path} is a symlink to {target}, outside the folder {root}: copy "
                        f"what it points to into the folder, or remove the link")
                out.append((rel, "l", 0))
            elif e.is_dir():
                out.append((rel, "d", 0))
                visit(e.path, rel + "/")
            else:
                out.append((rel, "f", e.stat(follow_symlinks=False).st_size if sizes else 0))

    visit(root, "")
    return Path(root), out


def protected(path: Path, rh_home: Path) -> bool:
    """Whether removing ``path`` would remove the root, the home folder or the rh home (or a
    folder holding one of them)."""
    for keep in (Path("/"), Path.home(), rh_home):
        keep = Path(os.path.normpath(keep))
        if os.path.commonpath([path, keep]) == str(path):
            return True
    return False


# ------------------------------------------------------------------ sending


class _Sink:
    """A write-only file that hands ``CHUNK``-sized pieces to a queue, hashing them."""

    def __init__(self, put: Callable[[bytes], None]):
        self.put, self.buf, self.digest = put, bytearray(), hashlib.sha256()

    def write(self, data) -> int:
        self.buf += data
        if len(self.buf) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            chunk = bytes(self.buf)
            self.digest.update(chunk)
            self.buf = bytearray()
            self.put(chunk)


def pack(base: Path, entries: list[tuple[str, str, int]], as_name: str | None = None
         ) -> Iterator[bytes]:
    """The stream of ``entries`` (names relative to ``base``, from :func:`walk`): chunks of
    the archive, then its digest. The archive is written by a thread, a few chunks ahead. A
    single file can be sent under another name (``as_name``)."""
    chunks: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise TransferError("the receiver stopped reading")

    def write() -> None:
        sink = _Sink(put)
        try:
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT,
                              bufsize=CHUNK) as tf:
                for name, _kind, _size in entries:
                    tf.add(base / name, arcname=as_name or name, recursive=False)
            sink.flush()
            put(sink.digest.digest())
            put(None)
        except BaseException as e:  # handed to the reader, which raises it
            if not stop.is_set():
                put(e)

    thread = threading.Thread(target=write, name="rh-pack", daemon=True)
    thread.start()
    try:
        while True:
            item = chunks.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def pack_contents(files: dict[str, bytes]) -> bytes:
    """A whole stream (archive and digest) holding ``files`` (name -> bytes), in memory."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(check_name(name))
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    body = out.getvalue()
    return body + hashlib.sha256(body).digest()


# ------------------------------------------------------------------ receiving


class Checked(io.RawIOBase):
    """A readable file over chunks of a stream that holds back the trailing digest, hashes what
    it passes on, and checks the digest in :meth:`finish`."""

    def __init__(self, chunks: Iterable[bytes]):
        self.chunks, self.pending, self.digest = iter(chunks), bytearray(), hashlib.sha256()
        self.done = False

    def readable(self) -> bool:
        return True

    def _fill(self, want: int) -> None:
        while not self.done and len(self.pending) < want + TRAILER:
            chunk = next(self.chunks, None)
            if chunk is None:
                self.done = True
            else:
                self.pending += chunk

    def readinto(self, buf) -> int:
        self._fill(len(buf))
        n = min(len(buf), max(0, len(self.pending) - TRAILER))
        if n:
            view = memoryview(self.pending)[:n]
            buf[:n] = view
            self.digest.update(view)
            view.release()
            del self.pending[:n]
        return n

    def finish(self) -> None:
        """Read what is left and compare the digest; TransferError when they differ."""
        while self.readinto(bytearray(CHUNK)):
            pass
        if len(self.pending) != TRAILER or bytes(self.pending) != self.digest.digest():
            raise TransferError("the archive does not match its checksum: it was cut short or "
                                "changed on the way; nothing was written, copy it again")


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


def unpack(chunks: Iterable[bytes], dest: Path, overwrite: bool = True) -> tuple[int, int]:
    """Extract a stream into the folder ``dest`` (made if missing): ``(files, bytes)``. Files
    already there are replaced when ``overwrite``, else DataExistsError and nothing changes."""
    reader = Checked(chunks)
    with staged(dest) as staging:
        try:
            with tarfile.open(fileobj=reader, mode="r|", bufsize=CHUNK) as tf:
                for member in tf:
                    tf.extract(safe_member(member, staging, dest), staging, **_NO_FILTER)
        except (tarfile.TarError, EOFError) as e:
            raise TransferError(f"the body is not an rh tar stream ({e}); nothing was "
                                f"written") from None
        reader.finish()
        return move_into_place(staging, dest, overwrite)


#: Pythons with tarfile's filters (3.12, 3.11.4, 3.10.12) are told the member is checked.
_NO_FILTER = {"filter": "fully_trusted"} if hasattr(tarfile, "data_filter") else {}


def safe_member(member: tarfile.TarInfo, staging: Path, dest: Path) -> tarfile.TarInfo:
    """``member`` as it may be written into ``staging``: no absolute name, nothing outside
    (``..``, links pointing out), only files, folders and symlinks, no set-id bits, owned by
    whoever extracts it (Python's data filter where it exists, and the same checks where not)."""
    name = member.name
    why = None
    if name.startswith(("/", "\\")) or os.path.isabs(name):
        why = "an absolute name"
    elif escapes(str(staging), "", name):
        why = "outside the destination"
    elif member.issym() and escapes(str(staging), name, member.linkname):
        why = f"a link to {member.linkname}, outside the destination"
    elif member.islnk() and escapes(str(staging), "", member.linkname):
        why = f"a hard link to {member.linkname}, outside the destination"
    elif not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        why = "not a file, folder or link"
    if why is None and hasattr(tarfile, "data_filter"):
        try:
            return tarfile.data_filter(member, str(staging))
        except tarfile.FilterError as e:
            why = str(e)
    if why is not None:
        raise UnsafePathError(f"the archive member {name!r} would land outside {dest} ({why}); "
                              f"nothing was written")
    member.mode = (member.mode & 0o755) | (0o700 if member.isdir() else 0o600)
    member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
    return member


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


def read_files(body: bytes) -> dict[str, bytes]:
    """The regular files of a whole stream held in memory (name -> bytes), checked."""
    reader = Checked([body])
    data = reader.read()
    reader.finish()
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        for member in tf:
            if member.isfile():
                out[member.name] = tf.extractfile(member).read()
    return out
