"""Code sync: a function's code root copied to every node of a byo cluster (rsync, or sftp
where there is none), with the same excludes and ``.gitignore`` rules, within the cluster's
``sync_limit_mb``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from rh_core.codetree import sync_options, synced_size
from rh_core.errors import ConfigError
from rh_core.progress import Steps


def sync_code(provider, local_root: str) -> str:
    """Copy the code root ``local_root`` to ``~/.rh/code/<folder>-<hash>/`` on every node of
    ``provider``'s cluster (Ray tasks import the code there too), incrementally; returns the
    copy's path on the nodes. A tree above the cluster's ``sync_limit_mb`` is refused."""
    root = Path(local_root)
    if not root.is_dir():
        return local_root
    extra = sync_options(root)
    limit_mb = provider.cluster.sync_limit_mb
    size = synced_size(root, extra)
    if size > limit_mb * 2**20:
        raise ConfigError(
            f"{root} holds {size / 2**20:.0f} MB to sync, above the cluster's limit of "
            f"{limit_mb} MB: add a .gitignore, or raise sync_limit_mb")
    tag = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    remote = f"code/{root.name}-{tag}"
    home = provider.home_dir()

    def sync(node) -> str:
        node.run(f"mkdir -p ~/.rh/{remote}")
        return node.rsync(f"{root}/", f"~/.rh/{remote}/", extra)

    nodes = provider.ssh_nodes("all")
    more = f" to {len(nodes)} nodes" if len(nodes) > 1 else ""
    with Steps(provider.cluster.short_name).step(f"syncing {root.name}{more}") as s:
        stats = provider.each(sync, nodes)[0]
        sent = [ln for ln in stats.splitlines() if "files transferred" in ln]
        s["note"] = f"{sent[0].split(':')[1].strip()} files sent" if sent else ""
    return f"{home}/.rh/{remote}"
