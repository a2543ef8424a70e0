"""What a folder, blob or table passed to a function on a cluster becomes there: the folder's
path, the blob's bytes, the table (a pyarrow Table).

While a call's arguments are pickled for a cluster (:mod:`rh_core.resources.destination`), a
data resource pickles as a small record, ``arrive(record)``, made so that the data can be found
there: data already on that cluster (or on this machine, when the cluster's server shares its
files) is named where it is and nothing travels; data on this machine is copied there first (a
blob's bytes travel in the record instead); data in object storage is read by the cluster itself.
The server only forwards the pickle; the env worker that unpickles it runs :func:`arrive`.
"""

from __future__ import annotations

import os
from pathlib import Path

from rh_core import errors
from rh_core.paths import rh_home
from rh_core.resources.cluster import Cluster
from rh_core.resources.data import parquet, systems, transfer
from rh_core.resources.data.places import LocalPlace, StoragePlace
from rh_core.transport import archive


def record_for(data, target: Cluster) -> dict:
    """The record ``data`` (a Folder, Blob or Table) pickles as for a call on ``target``,
    copying it there first when it is on neither that cluster nor a machine it shares."""
    kind, path, system = data.resource_type, data._need_path(), data.system
    if isinstance(system, Cluster) and system.short_name == target.short_name:
        return {"kind": kind, "cluster": target.short_name, "path": path}
    if system == "file":
        if transfer.shares_files(target):
            return {"kind": kind, "machine": archive.machine_id(), "path": path}
        if kind == "blob":
            return {"kind": kind, "bytes": data.data}
    elif not isinstance(system, Cluster):
        return {"kind": kind, "storage": system, "path": path, "config": data.data_config}
    copy = data.to(target)  # the same default path each time: copying again updates it
    return {"kind": kind, "cluster": target.short_name, "path": copy.path}


def arrive(record: dict):
    """Run where the call's arguments are unpickled: the path, bytes or table ``record``
    stands for."""
    kind = record["kind"]
    if "bytes" in record:
        return record["bytes"]
    if "storage" in record:
        return _from_storage(kind, record)
    path = record["path"]
    if "cluster" in record:
        here = os.environ.get("RH_CLUSTER_NAME")
        if here != record["cluster"]:
            raise errors.DataNotFoundError(
                f"this {kind} is at {path} on cluster {record['cluster']!r}, and this code runs "
                f"{f'on cluster {here!r}' if here else 'outside any cluster'}: copy it with "
                f".to(cluster) and pass the copy")
    elif record["machine"] != archive.machine_id():
        raise errors.DataNotFoundError(f"this {kind} is at {path} on another machine: copy it "
                                       f"with .to(cluster) and pass the copy")
    return _open(kind, _node_path(path))


def _node_path(path: str) -> str:
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else str(Path.home() / path)


def _open(kind: str, path: str):
    if kind == "blob":
        return LocalPlace().read(path)
    if not os.path.isdir(path):
        raise errors.DataNotFoundError(f"no {kind} at {path} here: it was moved or removed")
    if kind == "table":
        return parquet.read(LocalPlace(), path)
    return path


def _from_storage(kind: str, record: dict):
    place = StoragePlace(record["storage"], record.get("config"))
    url = record["path"]
    if kind == "blob":
        return place.read(url)
    if kind == "table":
        return parquet.read(place, url)
    cache = rh_home() / "data" / "cache" / f"{url.rstrip('/').rsplit('/', 1)[-1]}-" \
                                           f"{systems.digest(url)}"
    transfer.copy(place, url, LocalPlace(), str(cache), folder=True)
    return str(cache)
