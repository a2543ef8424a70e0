"""Names next to the code: ``~`` names in the working git repository's ``rh/`` folder (else in
the rh home), the full name a resource was saved under (``rns_address``), and ``rh ls``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import userfns

import rh_core as rh
from rh_core.testing import private_home

RH = Path(sys.executable).with_name("rh")


@pytest.fixture(autouse=True)
def _fresh_folder():
    rh.set_folder("~")
    yield
    rh.set_folder("~")


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository (made by git) with an ``rh/`` folder at its root; the working directory
    is a folder inside it, as when running a script of the project."""
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / "rh").mkdir()
    monkeypatch.chdir(root / "src")
    return root


def rh_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    if not RH.exists():
        pytest.fail(f"the rh command is not installed next to {sys.executable}: pip install -e .",
                    pytrace=False)
    return subprocess.run([str(RH), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_names_are_saved_in_the_repositorys_rh_folder(repo, rh_home, local):
    assert rh.current_store() == str(repo / "rh")
    f = rh.function(userfns.concat).to(local)
    f.save("~/repo-tools/concat")
    saved = repo / "rh" / "repo-tools" / "concat.json"
    assert saved.read_text() == json.dumps(f.config(), indent=2, sort_keys=True) + "\n"
    assert saved.stat().st_mode & 0o777 == 0o644  # versioned with the code, readable like it
    assert not (rh_home / "rns" / "repo-tools").exists()
    assert rh.function(name="~/repo-tools/concat")("run", "house") == "runhouse"


def test_a_repository_without_rh_folder_and_no_repository_use_the_rh_home(tmp_path, rh_home,
                                                                          monkeypatch):
    bare = tmp_path / "bare"
    subprocess.run(["git", "init", "-q", str(bare)], check=True)
    monkeypatch.chdir(bare)
    assert rh.current_store() == str(rh_home / "rns")
    rh.env(name="in-bare-repo", reqs=["numpy"]).save()
    assert (rh_home / "rns" / "in-bare-repo.json").is_file()

    monkeypatch.chdir(tmp_path)  # no repository above it
    assert rh.current_store() == str(rh_home / "rns")
    assert rh.env(name="in-bare-repo").reqs == ["numpy"]


def test_a_worktree_whose_git_is_a_file_is_a_repository(tmp_path, monkeypatch):
    worktree = tmp_path / "wt"
    (worktree / "rh").mkdir(parents=True)
    (worktree / ".git").write_text(f"gitdir: {tmp_path}/main/.git/worktrees/wt\n")
    monkeypatch.chdir(worktree)
    assert rh.current_store() == str(worktree / "rh")


def test_loading_looks_in_the_repository_first_then_the_rh_home(repo, rh_home, monkeypatch):
    monkeypatch.chdir(repo.parent)  # outside the repository: saved in the rh home
    rh.env(name="shared-name", reqs=["from-home"]).save()
    rh.env(name="only-home", reqs=["numpy"]).save()
    monkeypatch.chdir(repo / "src")
    repos = rh.env(name="shared-name", reqs=["from-repo"]).save()

    assert rh.env("shared-name").reqs == ["from-repo"]
    assert rh.env("only-home").reqs == ["numpy"]
    assert repos.delete_configs() is True  # deletes the one loading found
    assert rh.env("shared-name").reqs == ["from-home"]


def test_rh_ls_lists_the_repositorys_names_and_the_rh_homes_marked(repo, tmp_path, monkeypatch):
    with private_home(tmp_path / "home") as home:
        monkeypatch.chdir(tmp_path)
        rh.env(name="concat", reqs=["numpy"]).save()
        rh.env(name="both", reqs=["numpy"]).save()
        monkeypatch.chdir(repo / "src")
        rh.env(name="both", reqs=["numpy"]).save()
        rh.env(name="deep", reqs=["numpy"]).save("~/proj/deep")

        out = rh_cli("ls", cwd=repo / "src")
        assert out.returncode == 0, out.stderr
        assert out.stdout == (
            f"{repo}/rh (this git repository; new names are saved here):\n"
            f"  ~/both\n"
            f"  ~/proj/\n"
            f"{home}/rns (the rh home):\n"
            f"  ~/both  (hidden: loading finds the one above)\n"
            f"  ~/concat\n")
        assert rh_cli("ls", f"{Path.home()}/proj", cwd=repo).stdout == (  # a shell's `~/proj`
            f"{repo}/rh (this git repository; new names are saved here):\n"
            f"  ~/proj/deep\n"
            f"{home}/rns (the rh home):\n"
            f"  (nothing saved here)\n")
        assert rh_cli("ls", cwd=tmp_path).stdout == (
            f"{home}/rns (the rh home; new names are saved here):\n"
            f"  ~/both\n"
            f"  ~/concat\n")


def test_the_full_name_is_fixed_when_saved(local):
    f = rh.function(userfns.concat).to(local)
    assert f.rns_address == "~/concat"  # not saved yet: its name in the current folder
    rh.set_folder("~/proj")
    assert f.rns_address == "~/proj/concat"
    f.save("boomer")
    rh.set_folder("~")

    assert f.rns_address == "~/proj/boomer"
    assert f.name == "boomer"
    assert f("run", "house") == "runhouse"  # still served under the name it was sent as
    assert rh.exists("~/proj/boomer") and not rh.exists("~/boomer")
    f.save()  # again where it was saved, not in the new current folder
    assert not rh.exists("~/boomer")

    rh.set_folder("~/proj")
    loaded = rh.load("boomer")
    rh.set_folder("~")
    assert loaded.rns_address == "~/proj/boomer"
    assert loaded.to(local).rns_address == "~/proj/boomer"

    with pytest.raises(rh.ConfigError, match="read-only"):
        f.save("^boomer")
    assert (f.name, f.rns_address) == ("boomer", "~/proj/boomer")  # a failed save changes neither

    assert f.delete_configs() is True
    assert not rh.exists("~/proj/boomer")
    assert loaded.delete_configs() is False  # already gone


def test_an_instance_has_its_own_name_not_its_classs(local):
    Counter = rh.module(userfns.Counter).to(local)
    Counter.save("~/mods/Counter")
    counter = Counter(3, name="counter_addr")
    assert Counter.rns_address == "~/mods/Counter"
    assert counter.rns_address == "~/counter_addr"
    assert Counter.delete_configs() is True
