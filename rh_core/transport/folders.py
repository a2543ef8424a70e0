"""The client's side of the server's ``/folder`` routes: operations on paths of the cluster's
node, and folders sent and fetched as tar streams with a checksum (:mod:`archive`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rh_core import errors
from rh_core.transport import archive, wire

#: The error each kind of answer of the folder routes stands for.
KINDS = {
    "path_not_found": errors.DataNotFoundError,
    "exists": errors.DataExistsError,
    "unsafe_path": errors.UnsafePathError,
    "disk_full": errors.DiskFullError,
    "transfer": errors.TransferError,
}


def _check(client, resp):
    if resp.status_code >= 400:
        try:
            err = resp.json().get("error", {})
        except ValueError:
            err = {}
        cls = KINDS.get(err.get("kind"))
        if cls is not None:
            raise cls(f"on cluster {client.cluster_name!r}: {err.get('message')}")
    return client.check(resp)


def op(client, operation: str, **spec: Any) -> dict:
    """``POST /folder/{operation}`` with ``spec``; the answer."""
    resp = client.request("POST", f"/folder/{operation}", content=json.dumps(spec),
                          headers={"Content-Type": wire.JSON_CT})
    return _check(client, resp).json()


def upload(client, base: Path, entries: list, dest: str, overwrite: bool = True,
           as_name: str | None = None) -> dict:
    """Send ``entries`` of ``base`` (from :func:`archive.walk`) into the folder ``dest`` of the
    node (a single file under the name ``as_name``): ``{"path", "files", "bytes"}``."""
    return _put(client, archive.pack(base, entries, as_name), dest, overwrite)


def upload_contents(client, files: dict[str, bytes], dest: str, overwrite: bool) -> dict:
    """Write ``files`` (name -> bytes) into the folder ``dest`` of the node."""
    return _put(client, archive.pack_contents(files), dest, overwrite)


def _put(client, body, dest: str, overwrite: bool) -> dict:
    params = {"path": dest, "overwrite": "1" if overwrite else "0"}
    resp = client.request("PUT", "/folder/tar", params=params, content=body,
                          headers={"Content-Type": archive.CONTENT_TYPE})
    return _check(client, resp).json()


def download(client, path: str, dest: Path, overwrite: bool = True) -> tuple[int, int]:
    """Fetch the folder (or file) ``path`` of the node into the local folder ``dest``:
    ``(files, bytes)``."""
    # httpx (tens of ms to import) loads with the client, never at `import rh_core`.
    import httpx

    resp = client._send(lambda: client.http.build_request("GET", "/folder/tar",
                                                          params={"path": path}))
    try:
        if resp.status_code >= 400:
            resp.read()
            _check(client, resp)
        return archive.unpack(resp.iter_raw(archive.CHUNK), dest, overwrite)
    except (httpx.RemoteProtocolError, httpx.ReadError) as e:
        raise errors.TransferError(f"the copy of {path} from cluster {client.cluster_name!r} "
                                   f"was cut ({e}); nothing was written, copy it again") from None
    finally:
        resp.close()


def read(client, path: str) -> dict[str, bytes]:
    """The files of the folder (or the file) ``path`` of the node, in memory: name -> bytes."""
    resp = client.request("GET", "/folder/tar", params={"path": path})
    return archive.read_files(_check(client, resp).content)
