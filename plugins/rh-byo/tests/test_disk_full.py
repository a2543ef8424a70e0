"""A node whose disk is full: bring-up and code sync stop with a message that says so (and how
much is free), leave no install marker behind, and work once there is room again."""

from __future__ import annotations

import os
import pwd
import subprocess

import pytest
import userfns
from rh_byo import testing
from rh_byo.errors import DiskFullError
from rh_byo.ssh import free_port

import rh_core as rh

USER = "rhbyofull"


@pytest.fixture(scope="module")
def small_disk(ssh_tools):
    """A private sshd for a user whose ~/.rh is a small tmpfs (unmounted at the end)."""
    server = testing.start_sshd(USER)
    home = server.user_home / ".rh"
    home.mkdir(exist_ok=True)
    user = pwd.getpwnam(USER)
    subprocess.run(["mount", "-t", "tmpfs", "-o",
                    f"size=30m,mode=0755,uid={user.pw_uid},gid={user.pw_gid}", "tmpfs",
                    str(home)], check=True)
    cluster = rh.cluster(name="byo-full", ips=["127.0.0.1"], ssh_creds=server.creds,
                         server_port=free_port())  # the default port may be taken meanwhile
    try:
        yield cluster, home
    finally:
        cluster.down()
        subprocess.run(["umount", str(home)], check=True)
        server.stop()


def _resize(home, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(home)], check=True)


def test_full_disk_stops_bring_up_clearly_and_frees_later(small_disk):
    cluster, home = small_disk
    with pytest.raises(DiskFullError, match=r"the disk holding ~/.rh on rhbyofull@127.0.0.1 is "
                                            r"full: .* failed with 'No space left on device'; "
                                            r"free \d+ MB of 30 MB\. Free space there"):
        rh.function(userfns.add).to(cluster)
    assert not (home / "venv" / ".rh-wheelhouse").exists()  # no half-done install recorded
    assert not (home / "venv" / ".rh-wheelhouse.new").exists()
    _resize(home, "400m")  # space freed
    assert rh.function(userfns.add).to(cluster)(1, 2) == 3


def test_full_disk_stops_code_sync_clearly(small_disk, tmp_path, monkeypatch):
    cluster, home = small_disk
    rh.function(userfns.add).to(cluster)
    st = os.statvfs(home)
    used_mb = (st.f_blocks - st.f_bfree) * st.f_frsize // 2**20
    _resize(home, f"{used_mb + 2}m")
    try:
        proj = tmp_path / "bigproj"
        proj.mkdir()
        (proj / "big_mod.py").write_text("def value():\n    return 1\n")
        (proj / "data.bin").write_bytes(os.urandom(6 * 2**20))
        monkeypatch.syspath_prepend(str(proj))
        import big_mod

        with pytest.raises(DiskFullError, match=r"the disk holding ~/.rh on rhbyofull@127.0.0.1 "
                                                r"is full: copying to ~/.rh/code/bigproj-\w+/ "
                                                r"failed with 'No space left on device'; free \d+ MB"):
            rh.function(big_mod.value).to(cluster)
    finally:
        _resize(home, "400m")


def test_full_disk_stops_a_data_copy_clearly(small_disk, tmp_path):
    cluster, home = small_disk
    rh.function(userfns.add).to(cluster)
    st = os.statvfs(home)
    used_mb = (st.f_blocks - st.f_bfree) * st.f_frsize // 2**20
    _resize(home, f"{used_mb + 2}m")
    try:
        src = tmp_path / "data"
        src.mkdir()
        (src / "big.bin").write_bytes(os.urandom(6 * 2**20))
        with pytest.raises(rh.DiskFullError, match=r"the disk holding ~/.rh on rhbyofull@127.0.0.1 "
                                                   r"is full: copying to .*/\.rh/data/data-\w+/ "
                                                   r"failed with 'No space left on device'"):
            rh.folder(path=str(src)).to(cluster)
        # Nothing under the final name; what was sent waits in .rh-partial for the next copy.
        assert [p.parent.name for p in (home / "data").rglob("big.bin")] == [".rh-partial"]
        _resize(home, "400m")
        copy = rh.folder(path=str(src)).to(cluster)
        assert copy.ls(full_paths=False) == ["big.bin"]
        assert not list((home / "data").rglob(".rh-partial"))
    finally:
        _resize(home, "400m")
