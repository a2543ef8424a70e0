"""Objects kept on a cluster under keys: ``cluster.put(key, obj)``, ``cluster.get(key)``.

They are kept as the bytes the client sent (an rh pickle body, or JSON), never unpickled by the
server, like the results of runs: a call on the cluster that names one (``cluster.ref(key)``, or
the handle ``put`` returns) gets it unpickled in its worker, without a trip through the client.
They live in the server's memory, until deleted or until the server stops.
"""

from __future__ import annotations

import time

import attrs


@attrs.define
class Stored:
    """One object: its serialization (``pickle`` or ``json``) and bytes."""

    ser: str
    data: bytes
    created: float = attrs.Factory(time.time)

    def summary(self, key: str) -> dict:
        return {"key": key, "serialization": self.ser, "bytes": len(self.data),
                "created": self.created}


class ObjectStore:
    """Objects by key."""

    def __init__(self) -> None:
        self.objects: dict[str, Stored] = {}

    def put(self, key: str, ser: str, data: bytes) -> Stored:
        stored = self.objects[key] = Stored(ser, data)
        return stored

    def get(self, key: str) -> Stored | None:
        return self.objects.get(key)

    def delete(self, key: str) -> bool:
        return self.objects.pop(key, None) is not None
