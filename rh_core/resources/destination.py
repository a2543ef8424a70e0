"""The cluster a call's arguments are being pickled for (while they are).

Remote callables set it around sending a call, so that data resources among the arguments
(folders, blobs, tables) pickle as what the function should get on that cluster: the folder's
path there, the blob's bytes, the table, copied there first when they are elsewhere (see
:mod:`rh_core.resources.data.arrival`). Pickled at any other time, they pickle as themselves.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

_DESTINATION: contextvars.ContextVar = contextvars.ContextVar("rh_destination", default=None)


def destination():
    """The cluster arguments are being pickled for, or None."""
    return _DESTINATION.get()


@contextlib.contextmanager
def sending_to(cluster) -> Iterator[None]:
    """Within the block, arguments are pickled for ``cluster``."""
    token = _DESTINATION.set(cluster)
    try:
        yield
    finally:
        _DESTINATION.reset(token)
