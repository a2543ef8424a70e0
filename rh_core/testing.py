"""Helpers for tests of rh and of its plugins (no pytest import here)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def private_home(path: Path) -> Iterator[Path]:
    """Point ``RH_HOME`` at ``path`` for the duration, then put back what was there."""
    old = os.environ.get("RH_HOME")
    os.environ["RH_HOME"] = str(path)
    try:
        yield path
    finally:
        if old is None:
            os.environ.pop("RH_HOME", None)
        else:
            os.environ["RH_HOME"] = old
