"""Folders, blobs and tables on a bring-your-own node over real SSH: copied with rsync through
the master connection (never through the server), within the cluster's sync_limit_mb, and
passed to functions there as paths, bytes and tables."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import datafns
import pandas as pd
import pytest
from waiting import wait_until

import rh_core as rh
from rh_core.resources.data import transfer


def _tree(root: Path, big: int = 200_000) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.bin").write_bytes(os.urandom(big))
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _requests_so_far(cluster) -> list[tuple[str, str]]:
    """``(method, path)`` of every request the cluster's server logged, up to now (the server
    writes its access log every second: a last request of its own marks the end)."""
    marker = f"/objects/marker-{uuid.uuid4().hex[:8]}"
    cluster.get(marker.rsplit("/", 1)[1], default=None)

    def logged():
        entries = cluster.access_log()
        return entries if any(e["path"] == marker for e in entries) else None

    return [(e["method"], e["path"]) for e in wait_until(logged, 10, "the access log")]


def test_a_folder_goes_to_the_node_with_rsync_and_back(node, sshd, tmp_path):
    src = _tree(tmp_path / "data")
    cf = rh.folder(path=str(src)).to(node)
    home = str(sshd["user_home"])
    assert cf.system is node and cf.path.startswith(f"{home}/.rh/data/data-")
    assert _files(Path(cf.path)) == _files(src)  # the node is this machine's other user
    assert cf.ls(full_paths=False) == ["a.txt", "sub"]
    (src / "a.txt").write_text("changed")
    again = rh.folder(path=str(src)).to(node)  # the same copy, updated
    assert again.path == cf.path and Path(cf.path, "a.txt").read_text() == "changed"
    assert cf.to("here", path=str(tmp_path / "back")).system == "file"
    assert _files(tmp_path / "back") == _files(src)
    assert not list(Path(cf.path).rglob(".rh-partial")) and not list(
        (tmp_path / "back").rglob(".rh-partial"))
    # rsync over SSH, not the server's tar route
    assert [r for r in _requests_so_far(node) if r[1] == "/folder/tar"] == []
    assert again.get("a.txt") == b"changed"  # reading one file goes through the server


def test_folders_passed_to_a_function_on_the_node(node, sshd, tmp_path, monkeypatch):
    listing = rh.function(datafns.listing).to(node)
    src = _tree(tmp_path / "args")
    path, names = listing(rh.folder(path=str(src)))  # copied there first
    assert path.startswith(f"{sshd['user_home']}/.rh/data/args-") and names == ["a.txt", "sub/b.bin"]
    cf = rh.folder(path=str(src)).to(node)
    copies = []
    monkeypatch.setattr(transfer, "copy", lambda *a, **k: copies.append(a))
    assert listing(cf) == (cf.path, ["a.txt", "sub/b.bin"])
    assert copies == []  # already there: nothing travels
    monkeypatch.undo()
    with pytest.raises(rh.DataNotFoundError, match=f"no folder or file at {tmp_path}/gone on "
                                                   f"this machine"):
        listing(rh.folder(path=str(tmp_path / "gone")))


def test_blobs_and_tables_on_the_node(node):
    b = rh.blob(data=b"on the node").to(node)
    assert b.data == b"on the node"
    assert rh.function(datafns.size_of).to(node)(b) == ("bytes", 11)
    df = pd.DataFrame({"a": range(100), "b": [f"x{i}" for i in range(100)]})
    t = rh.table(data=df).to(node)
    pd.testing.assert_frame_equal(t.to_pandas(), df)
    assert sum(batch.num_rows for batch in t.stream(batch_size=30)) == 100
    t.write(df.iloc[:5])
    assert t.data.num_rows == 105


def test_a_folder_over_the_sync_limit_is_refused(node, tmp_path):
    limited = rh.cluster(name=node.short_name, ips=node.ips, ssh_creds=node.ssh_creds,
                         server_port=node.server_port, sync_limit_mb=1)
    src = _tree(tmp_path / "big", big=2 << 20)
    target = rh.folder(path="~/over-limit", system=limited)
    target.rm()  # left by an earlier session, if any
    with pytest.raises(rh.ConfigError, match=rf"{src} holds 2 MB to copy, above the cluster's "
                                             rf"limit of 1 MB: raise the cluster's sync_limit_mb"):
        rh.folder(path=str(src)).to(limited, path="~/over-limit")
    assert not target.exists_in_system()
