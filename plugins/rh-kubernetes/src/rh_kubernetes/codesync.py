"""Code sync into pods: a function's code root, the files rh_core's ``codetree`` picks (the
usual excludes and ``.gitignore`` rules), sent as one tar to each pod's agent, which swaps it in
whole. A digest of the files' names, sizes and times is kept beside the copy, so an unchanged
tree costs one small request per pod."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

from rh_core.codetree import shipped
from rh_core.errors import ConnectionFailedError
from rh_core.progress import Steps
from rh_kubernetes.waiting import Watcher

#: Refuse to sync a code root larger than this (a tar in memory, sent through the API server).
LIMIT_MB = 256


def sync_code(provider, local_root: str) -> str:
    """Copy ``local_root`` to ``$RH_HOME/code/<folder>-<hash>`` in every pod of ``provider``'s
    cluster (when its digest there differs); returns the copy's path in the pods."""
    root = Path(local_root)
    if not root.is_dir():
        return local_root
    manifest, digest, folder = shipped(root, LIMIT_MB, "the pods")
    pods = [p.metadata.name for p in Watcher(provider.kube, provider.cluster).pods()]
    answers = provider.each(lambda pod: provider._agent(pod, "GET", f"/code/{folder}",
                                                        timeout=60), pods)
    stale = [pod for pod, (status, info) in zip(pods, answers, strict=True)
             if status != 200 or info.get("digest") != digest]
    path = answers[0][1].get("path")
    if stale:
        with Steps(provider.cluster.short_name).step(f"syncing {root.name} into {len(stale)} "
                                                     f"pod(s)") as s:
            body = _tar(root, manifest)
            s["note"] = f"{sum(1 for e in manifest.values() if e[0] == 'f')} files"

            def put(pod: str) -> str:
                status, info = provider._agent(pod, "PUT", f"/code/{folder}?digest={digest}",
                                               body=body, timeout=600)
                if status != 200:
                    raise ConnectionFailedError(f"syncing {root} into pod {pod} failed: {info}")
                return info["path"]

            path = provider.each(put, stale)[0]
    return path


def _tar(root: Path, manifest: dict) -> bytes:
    """The synced files of ``root`` as an uncompressed tar (code is small; compressing costs
    more time than it saves on the way through the API server)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in sorted(manifest):
            tar.add(root / rel, arcname=rel, recursive=False)
    return buf.getvalue()
