"""Functions the secrets tests send to clusters: what code there sees of a secret (a file in the
cluster user's home, an environment variable), as a user's code would look."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def file_facts(path: str) -> dict:
    """A file on the cluster: its text, mode, owner and the folder's mode."""
    full = Path(path).expanduser()
    st = full.stat()
    return {"path": str(full), "text": full.read_text(), "mode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid, "user_uid": os.getuid(),
            "folder_mode": stat.S_IMODE(full.parent.stat().st_mode)}


def getenv(name: str) -> str | None:
    return os.environ.get(name)


def read_env_file(var: str) -> str:
    """The text of the file an environment variable points at (GOOGLE_APPLICATION_CREDENTIALS)."""
    return Path(os.environ[var]).read_text()
