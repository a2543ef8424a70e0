"""Code sync into a SageMaker cluster: the files of a function's code root that rh_core's
``codetree`` picks (the usual excludes and ``.gitignore`` rules), sent as one tar through the
server's ``/folder/tar`` (over the ``aws_ssm`` connection) into ``~/rh-code/<folder>`` of the
head instance. A digest of the files' names, sizes and times is kept beside the copy, so an
unchanged tree costs one small request."""

from __future__ import annotations

from pathlib import Path

from rh_core.codetree import shipped
from rh_core.errors import DataNotFoundError
from rh_core.progress import Steps
from rh_core.transport import folders

#: Refuse to sync a code root larger than this (it goes through the SSM tunnel).
LIMIT_MB = 256
DIGEST = ".rh-digest"


def sync_code(cluster, local_root: str) -> str:
    """Copy ``local_root`` to ``~/rh-code/<folder>-<hash>`` on the head instance (when its
    digest there differs); returns the copy's path there."""
    root = Path(local_root)
    if not root.is_dir():
        return local_root
    manifest, digest, folder = shipped(root, LIMIT_MB, "the job")
    dest = f"rh-code/{folder}"
    client = cluster.client()
    try:
        there = folders.read(client, f"{dest}/{DIGEST}").get(DIGEST, b"").decode()
    except DataNotFoundError:
        there = None
    resolved = folders.op(client, "resolve", path=dest)["path"]
    if there == digest:
        return resolved
    files = sum(1 for e in manifest.values() if e[0] == "f")
    with Steps(cluster.short_name).step(f"syncing {root.name} into the job") as s:
        entries = [(rel, e[0], e[1] if e[0] == "f" else 0) for rel, e in sorted(manifest.items())]
        folders.upload(client, root, entries, dest, overwrite=True)
        folders.upload_contents(client, {DIGEST: digest.encode()}, dest, overwrite=True)
        s["note"] = f"{files} files"
    return resolved
