"""Code sync into a SageMaker cluster: the files of a function's code root that rh_core's
``codetree`` picks (the usual excludes and ``.gitignore`` rules), sent as one tar through the
server's ``/folder/tar`` (over the ``aws_ssm`` connection) into ``~/rh-code/<folder>`` of the
head instance. A digest of the files' names, sizes and times is kept beside the copy, so an
unchanged tree costs one small request.

On several instances only the head is reachable from here: its ``node.py`` forwards each synced
tree to the other instances, into the same path (``nodecode.py``), and writes the digest it
forwarded into ``.rh-forwarded`` (or why it could not into ``.rh-forward-error``); the sync
waits for that, so a ``.map`` whose Ray tasks run on the other instances finds the code there.
"""

from __future__ import annotations

import time
from pathlib import Path

from rh_core.codetree import shipped
from rh_core.errors import ConnectionFailedError, DataNotFoundError
from rh_core.progress import Steps
from rh_core.transport import folders

#: Refuse to sync a code root larger than this (it goes through the SSM tunnel).
LIMIT_MB = 256
DIGEST = ".rh-digest"
FORWARDED, FORWARD_ERROR = ".rh-forwarded", ".rh-forward-error"
#: How long the head may take to forward a code root to the other instances.
FORWARD_SECONDS = 300


def _read(client, path: str) -> str | None:
    try:
        return folders.read(client, path).get(path.rsplit("/", 1)[1], b"").decode()
    except DataNotFoundError:
        return None


def sync_code(cluster, local_root: str) -> str:
    """Copy ``local_root`` to ``~/rh-code/<folder>-<hash>`` on the head instance (when its
    digest there differs), and on several instances wait until the head has forwarded it to
    the others; returns the copy's path there."""
    root = Path(local_root)
    if not root.is_dir():
        return local_root
    manifest, digest, folder = shipped(root, LIMIT_MB, "the job")
    dest = f"rh-code/{folder}"
    client = cluster.client()
    there = _read(client, f"{dest}/{DIGEST}")
    resolved = folders.op(client, "resolve", path=dest)["path"]
    steps = Steps(cluster.short_name)
    if there != digest:
        files = sum(1 for e in manifest.values() if e[0] == "f")
        with steps.step(f"syncing {root.name} into the job") as s:
            entries = [(rel, e[0], e[1] if e[0] == "f" else 0)
                       for rel, e in sorted(manifest.items())]
            folders.upload(client, root, entries, dest, overwrite=True)
            folders.upload_contents(client, {DIGEST: digest.encode()}, dest, overwrite=True)
            s["note"] = f"{files} files"
    if cluster.instance_count > 1 and _read(client, f"{dest}/{FORWARDED}") != digest:
        with steps.step(f"forwarding {root.name} to the job's other "
                        f"{cluster.instance_count - 1} instance(s)"):
            _wait_forwarded(client, dest, digest)
    return resolved


def _wait_forwarded(client, dest: str, digest: str) -> None:
    deadline = time.monotonic() + FORWARD_SECONDS
    while time.monotonic() < deadline:
        if _read(client, f"{dest}/{FORWARDED}") == digest:
            return
        error = _read(client, f"{dest}/{FORWARD_ERROR}") or ""
        if error.startswith(digest + " "):
            raise ConnectionFailedError(f"the head instance could not forward the code root "
                                        f"to the others: {error[len(digest) + 1:]}")
        time.sleep(0.2)
    raise ConnectionFailedError(f"the head instance did not forward the code root {dest} to the "
                                f"other instances in {FORWARD_SECONDS} s: see c.logs()")
