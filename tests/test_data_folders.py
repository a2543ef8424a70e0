"""Folders on this machine and on the real local cluster: copies both ways, the operations in
place, names saved and loaded, Runhouse's spellings, what a function receives for a folder, and
the clear errors of bad input (a missing path, names and links that escape, a full disk)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import datafns
import pytest

import rh_core as rh
from rh_core.resources.data import transfer


def _tree(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 64)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_folder_goes_to_the_cluster_and_back(local, rh_home, tmp_path):
    src = _tree(tmp_path / "data")
    f = rh.folder(path=str(src))
    cf = f.to(local)
    assert cf.system is local
    assert cf.path.startswith(str(rh_home / "data" / "data-"))  # under the cluster's rh home
    assert cf.ls(full_paths=False) == ["a.txt", "sub"]
    assert cf.ls() == [f"{cf.path}/a.txt", f"{cf.path}/sub"]
    back = cf.to("here", path=str(tmp_path / "out"))
    assert back.system == "file" and back.path == str(tmp_path / "out")
    assert _files(tmp_path / "out") == _files(src)
    assert f.to(local).path == cf.path  # copying again updates the same copy
    named = f.to(local, path="rh-test-data/named")  # relative: from the server user's home
    assert named.path == str(Path.home() / "rh-test-data" / "named")
    named.rm()
    (Path.home() / "rh-test-data").rmdir()


@pytest.mark.parametrize("where", ["here", "cluster"])
def test_folder_operations_in_place(local, tmp_path, where):
    path = str(tmp_path / "work")
    f = rh.folder(path=path, system=local if where == "cluster" else "here")
    assert not f.exists_in_system()
    assert f.mkdir() is f and f.exists_in_system()
    f.put({"a.txt": b"one", "b.txt": "two", "deep/c.txt": b"three"})
    assert f.ls(full_paths=False, sort=True) == ["a.txt", "b.txt", "deep"]
    assert f.get("a.txt") == b"one" and f.get("b.txt", mode="r") == "two"
    assert f.get("deep/c.txt") == b"three"
    with pytest.raises(rh.DataExistsError, match=r"a\.txt.*overwrite=True"):
        f.put({"a.txt": b"changed", "new.txt": b"x"}, overwrite=False)
    assert f.get("a.txt") == b"one" and "new.txt" not in f.ls(full_paths=False)  # nothing written
    f.put({"a.txt": b"changed"}, overwrite=True)
    assert f.get("a.txt") == b"changed"
    with pytest.raises(rh.DataNotFoundError):
        f.get("missing.txt")
    f.rm(contents=["b.txt"])
    assert f.ls(full_paths=False, sort=True) == ["a.txt", "deep"]
    assert f.mv(str(tmp_path / "moved")) is f
    assert f.path == str(tmp_path / "moved") and f.exists_in_system()
    assert not os.path.exists(path)
    f.rm(recursive=False)  # what it holds; the folder stays
    assert f.exists_in_system() and f.ls() == []
    f.rm()
    assert not f.exists_in_system()
    f.rm()  # nothing there: nothing to do


def test_runhouse_spellings_and_a_folder_that_lives_on_the_cluster(local, tmp_path):
    remote = rh.folder(url=str(tmp_path / "remote_dir"), fs=local)  # Runhouse's older names
    assert remote.path == str(tmp_path / "remote_dir") and remote.system is local
    remote.mkdir().put({"a.txt": b"a"})
    here = remote.to("here", url=str(tmp_path / "local_directory"))
    assert here.path == str(tmp_path / "local_directory") and here.get("a.txt") == b"a"
    assert rh.folder(path="remote_dir", system="local").path == "remote_dir"  # from its home
    assert rh.folder(path="./x", system="here").path == os.path.abspath("x")
    with pytest.raises(rh.ConfigError, match="give the path once"):
        rh.folder(path="a", url="b")
    with pytest.raises(rh.ConfigError, match="unknown system 'nowhere'"):
        rh.folder(path="a", system="nowhere")


def test_folders_are_saved_and_loaded_by_name(local, tmp_path):
    rh.folder(path=str(tmp_path / "raw")).save("~/datasets/raw")
    loaded = rh.folder(name="~/datasets/raw")
    assert loaded.path == str(tmp_path / "raw") and loaded.system == "file"
    assert loaded.rns_address == "~/datasets/raw"
    on_cluster = rh.folder(path="/srv/data", system=local).save("~/datasets/on-local")
    back = rh.load("~/datasets/on-local")
    assert isinstance(back, rh.Folder) and back.system.short_name == "local"
    assert back.config()["system"]["subtype"] == "local" and back.path == on_cluster.path
    with pytest.raises(rh.ConfigError, match="is a folder, not a blob"):
        rh.blob(name="~/datasets/raw")
    for name in ("~/datasets/raw", "~/datasets/on-local"):
        assert rh.load(name).delete_configs()


def test_the_shared_store_is_not_there_yet():
    with pytest.raises(rh.UnknownPluginItemError, match="'@'"):
        rh.table(name="@/my_datasets/my_table")


def test_a_folder_passed_to_a_function_arrives_as_its_path(local, tmp_path, monkeypatch):
    src = _tree(tmp_path / "args")
    listing = rh.function(datafns.listing).to(local)
    f = rh.folder(path=str(src))
    cf = f.to(local)
    copies = []
    monkeypatch.setattr(transfer, "copy", lambda *a, **k: copies.append(a))
    monkeypatch.setattr(transfer, "local_copy", lambda *a, **k: copies.append(a))
    # On this machine's cluster both are read where they are: nothing is copied.
    assert listing(f) == (str(src), ["a.txt", "sub/b.bin"])
    assert listing(cf) == (cf.path, ["a.txt", "sub/b.bin"])
    assert rh.function(datafns.first_item).to(local)([cf]) == cf.path  # inside other arguments
    assert rh.get(listing.remote(cf)) == (cf.path, ["a.txt", "sub/b.bin"])
    assert [p for p, _ in listing.map([f, cf])] == [str(src), cf.path]
    assert asyncio.run(listing(cf, run_async=True))[0] == cf.path  # awaited in a thread
    holder = rh.module(datafns.Holder).to(local)(cf, name="holder")  # __init__ on the cluster
    assert holder.files() == ["a.txt", "sub"] and holder.path == cf.path
    assert copies == []
    import pickle

    assert pickle.loads(pickle.dumps(cf)).path == cf.path  # pickled outside a call: itself


def test_a_copy_between_two_clusters(local, own_cluster, tmp_path):
    cf = rh.folder(path=str(_tree(tmp_path / "src"))).to(local)
    other = cf.to(own_cluster)
    assert other.system is own_cluster and other.path != cf.path
    assert rh.function(datafns.listing).to(own_cluster)(other) == (
        other.path, ["a.txt", "sub/b.bin"])
    moved = rh.folder(path=str(tmp_path / "src"))
    moved.mv(str(tmp_path / "on-cluster"), system=local)
    assert moved.system is local and moved.exists_in_system()
    assert not (tmp_path / "src").exists()


def test_a_missing_folder_says_where_it_looked(local, tmp_path):
    gone = rh.folder(path=str(tmp_path / "nope"))
    with pytest.raises(rh.DataNotFoundError, match=f"no folder or file at {tmp_path}/nope on "
                                                   f"this machine"):
        gone.to(local)
    with pytest.raises(rh.DataNotFoundError, match="nope"):
        gone.ls()
    remote = rh.folder(path=str(tmp_path / "nope"), system=local)
    with pytest.raises(rh.DataNotFoundError, match=f"no folder or file at {tmp_path}/nope on "
                                                   f"cluster 'local': check the path"):
        remote.to("here", path=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    with pytest.raises(rh.DataNotFoundError, match=f"no folder at {tmp_path}/nope here"):
        rh.function(datafns.listing).to(local)(remote)


def test_names_and_links_that_escape_the_folder_are_refused(local, tmp_path):
    f = rh.folder(path=str(tmp_path / "box"), system=local).mkdir()
    for bad in ("../escaped.txt", "/etc/evil", "a/../../escaped.txt"):
        with pytest.raises(rh.UnsafePathError, match="would land outside"):
            f.put({bad: b"x"})
        with pytest.raises(rh.UnsafePathError, match="would land outside"):
            f.get(bad)
    assert not (tmp_path / "escaped.txt").exists()
    src = _tree(tmp_path / "linked")
    (src / "out").symlink_to("/etc/passwd")
    with pytest.raises(rh.UnsafePathError, match=r"out is a symlink to /etc/passwd, outside"):
        rh.folder(path=str(src)).to(local, path=str(tmp_path / "copy"))
    assert not (tmp_path / "copy").exists()  # nothing was copied
    (src / "out").unlink()
    (src / "inside").symlink_to("a.txt")  # a link within the folder travels as a link
    copy = rh.folder(path=str(src)).to(local, path=str(tmp_path / "copy"))
    assert os.readlink(Path(copy.path) / "inside") == "a.txt"


def test_a_full_disk_says_so_and_leaves_no_file_under_its_name(local, tmp_path, small_disk):
    src = tmp_path / "big"
    src.mkdir()
    (src / "small.txt").write_text("fits")
    (src / "large.bin").write_bytes(os.urandom(3 << 20))
    with pytest.raises(rh.DiskFullError, match=rf"the disk holding {small_disk}/dest is full "
                                               rf"\(\d+ MB free of 2 MB\): nothing was written"):
        rh.folder(path=str(src)).to(local, path=str(small_disk / "dest"))
    assert list(small_disk.iterdir()) == []  # neither the folder nor a staging folder
    (src / "large.bin").unlink()
    assert rh.folder(path=str(src)).to(local, path=str(small_disk / "dest")).ls(
        full_paths=False) == ["small.txt"]


def test_a_copy_sweeps_staging_folders_that_a_killed_copy_left(local, tmp_path):
    """A copy killed mid-way leaves its staging folder (``.<name>.rh-incoming-<pid>-...``) next
    to the destination; the next copy to that place removes it once its process is gone and it
    has not changed for ten minutes, and leaves the staging folders of live or recent copies."""
    src = _tree(tmp_path / "data")
    out = tmp_path / "out"
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    old = time.time() - 3600

    def left(name: str, pid: str, mtime: float) -> Path:
        p = tmp_path / f".out.rh-incoming-{pid}-{name}"
        p.mkdir()
        (p / "half.bin").write_bytes(b"x" * 1000)
        os.utime(p, (mtime, mtime))
        return p

    killed = left("killed", dead, old)
    live = left("live", str(os.getpid()), old)
    recent = left("recent", dead, time.time())
    rh.folder(path=str(src)).to("here", path=str(out))
    assert _files(out) == _files(src)
    assert not killed.exists() and live.exists() and recent.exists()
