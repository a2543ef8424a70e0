"""A node without rsync: wheels and code go over sftp (through the same SSH master connection),
still incrementally, with the same excludes and .gitignore, and deletions."""

from __future__ import annotations

import os
import uuid

import pytest
import userfns
from rh_byo import testing
from rh_byo.ssh import free_port
from waiting import wait_until

import rh_core as rh

USER = "rhbyonr"


@pytest.fixture(scope="module")
def bare_node(ssh_tools):
    """A private sshd (its own user, fresh) whose sessions' PATH has no rsync."""
    server = testing.start_sshd(USER, without=("rsync",))
    # A port of its own: another cluster on this machine may hold the default one.
    cluster = rh.cluster(name="byo-norsync", ips=["127.0.0.1"], ssh_creds=server.creds,
                         server_port=free_port())
    yield cluster, server
    cluster.down()
    server.stop()


def test_bring_up_without_rsync_on_the_node(bare_node, capfd):
    cluster, server = bare_node
    (code, _, _), = cluster.run("command -v rsync")
    assert code != 0  # the node really has none
    assert rh.function(userfns.concat).to(cluster)("run", "house") == "runhouse"
    shown = capfd.readouterr().err
    assert "rh byo-norsync: shipping wheels" in shown
    assert "rh byo-norsync: syncing userpkg" in shown
    wheels = os.listdir(server.user_home / ".rh" / "wheelhouse")
    assert any(w.startswith("rh_core-") for w in wheels)
    assert "subsystem 'sftp'" in (server.dir / "sshd.log").read_text()  # sent over sftp


def test_code_sync_without_rsync(bare_node, tmp_path, monkeypatch, capfd):
    cluster, server = bare_node
    proj = tmp_path / "nrproj"
    (proj / "pkg").mkdir(parents=True)
    (proj / "nr_mod.py").write_text("def value():\n    return 1\n")
    (proj / "old.py").write_text("")
    (proj / "with space [1].txt").write_text("odd name")
    (proj / ".gitignore").write_text("secret.txt\n")
    (proj / "secret.txt").write_text("do not ship")
    (proj / "pkg" / ".gitignore").write_text("*.log\n")
    (proj / "pkg" / "run.log").write_text("not this either")
    (proj / "pkg" / "keep.py").write_text("")
    monkeypatch.syspath_prepend(str(proj))
    import nr_mod

    assert rh.function(nr_mod.value).to(cluster)() == 1
    remote = next((server.user_home / ".rh" / "code").glob("nrproj-*"))
    assert sorted(p.relative_to(remote).as_posix() for p in remote.rglob("*")
                  if "__pycache__" not in p.parts) == [
        ".gitignore", "nr_mod.py", "old.py", "pkg", "pkg/.gitignore", "pkg/keep.py",
        "with space [1].txt"]
    capfd.readouterr()

    # Unchanged: nothing sent.
    assert rh.function(nr_mod.value).to(cluster)() == 1
    assert "syncing nrproj, 0 files sent" in capfd.readouterr().err

    # Changed and deleted locally: redeployed, and deleted on the node too.
    (proj / "nr_mod.py").write_text("def value():\n    return 2\n")
    st = (proj / "nr_mod.py").stat()
    os.utime(proj / "nr_mod.py", ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    (proj / "old.py").unlink()
    assert rh.function(nr_mod.value).to(cluster)() == 2
    assert "syncing nrproj, 1 files sent" in capfd.readouterr().err
    assert not (remote / "old.py").exists()
    assert (remote / "__pycache__").is_dir()  # made on the node, excluded: left alone


def test_data_without_rsync_streams_a_tar_through_the_server(bare_node, tmp_path):
    """Folders go through the server's /folder/tar (a tar with its checksum) instead."""
    cluster, server = bare_node
    src = tmp_path / "data"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    cf = rh.folder(path=str(src)).to(cluster)
    assert cf.path.startswith(f"{server.user_home}/.rh/data/data-")
    back = cf.to("here", path=str(tmp_path / "back"))
    assert (tmp_path / "back" / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    assert back.get("a.txt") == b"alpha"
    b = rh.blob(data=b"blob bytes").to(cluster, path="~/blobs/one.bin")
    assert b.path == f"{server.user_home}/blobs/one.bin" and b.data == b"blob bytes"
    assert b.to("here", path=str(tmp_path / "one.bin")).data == b"blob bytes"
    sent = _requests_so_far(cluster)
    assert ("PUT", "/folder/tar") in sent and ("GET", "/folder/tar") in sent


def _requests_so_far(cluster) -> list[tuple[str, str]]:
    """``(method, path)`` of every request the cluster's server logged, up to now (the server
    writes its access log every second: a last request of its own marks the end)."""
    marker = f"/objects/marker-{uuid.uuid4().hex[:8]}"
    cluster.get(marker.rsplit("/", 1)[1], default=None)

    def logged():
        entries = cluster.access_log()
        return entries if any(e["path"] == marker for e in entries) else None

    return [(e["method"], e["path"]) for e in wait_until(logged, 10, "the access log")]
