"""Where rh keeps its files on this machine."""

from __future__ import annotations

import functools
import os
from pathlib import Path


def rh_home() -> Path:
    """The user's rh home: ``$RH_HOME``, else ``~/.rh``. Created on first use, private to the user."""
    home = _home(os.environ.get("RH_HOME") or "~/.rh", os.environ.get("HOME"))
    if not home.exists():
        home.mkdir(parents=True, mode=0o700, exist_ok=True)
    return home


@functools.lru_cache(maxsize=8)
def _home(setting: str, _user_home: str | None) -> Path:
    # Asked on every name, config and token lookup: the path is made once per setting.
    return Path(setting).expanduser()


def write_private(path: Path, data: str | bytes) -> None:
    """Write ``path`` atomically with mode 0600 (never half-written, never world-readable)."""
    write_atomic(path, data, 0o600)


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Write ``path`` atomically (never half-written) with ``mode`` (less the umask), making
    its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
