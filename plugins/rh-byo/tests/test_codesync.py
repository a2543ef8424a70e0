"""sync_limit_mb: a code root with more to sync than the cluster's limit is refused with its
size and what to do; what a .gitignore leaves out does not count; under the limit it syncs."""

from __future__ import annotations

import re
import sys

import pytest

import rh_core as rh


@pytest.fixture
def big_project(node, tmp_path, monkeypatch):
    """A code root of 3 MB: a module and a data file beside it (its copy on the node is
    removed at the end)."""
    proj = tmp_path / "bigcode"
    proj.mkdir()
    (proj / "bigcode_mod.py").write_text("def value():\n    return 7\n")
    (proj / "weights.bin").write_bytes(b"\0" * (3 * 2**20))
    monkeypatch.syspath_prepend(str(proj))
    import bigcode_mod

    yield proj, bigcode_mod
    sys.modules.pop("bigcode_mod", None)
    node.run("rm -rf ~/.rh/code/bigcode-*")


def _limited(node, limit_mb: int):
    """The running byo-test cluster, with another sync limit."""
    return rh.cluster(name="byo-test", ips=["127.0.0.1"], ssh_creds=node.ssh_creds,
                      sync_limit_mb=limit_mb)


def test_code_over_the_limit_is_refused_until_a_gitignore_leaves_the_bulk_out(node, big_project):
    proj, bigcode_mod = big_project
    small = _limited(node, 1)
    message = (f"{proj} holds 3 MB to sync, above the cluster's limit of 1 MB: add a "
               f".gitignore, or raise sync_limit_mb")
    with pytest.raises(rh.ConfigError, match=f"^{re.escape(message)}$"):
        rh.function(bigcode_mod.value).to(small, name="bigcode_value")
    (code, out, _), = small.run("ls ~/.rh/code")
    assert "bigcode-" not in out  # nothing was sent

    (proj / ".gitignore").write_text("weights.bin\n")  # what the message says to do
    assert rh.function(bigcode_mod.value).to(small, name="bigcode_value")() == 7
    (code, out, _), = small.run("ls -a ~/.rh/code/bigcode-*/")
    assert "bigcode_mod.py" in out.split() and "weights.bin" not in out.split()


def test_code_under_a_raised_limit_syncs_whole(node, big_project):
    proj, bigcode_mod = big_project
    assert rh.function(bigcode_mod.value).to(_limited(node, 4), name="bigcode_value")() == 7
    (code, out, _), = node.run("stat -c %s ~/.rh/code/bigcode-*/weights.bin")
    assert (code, out) == (0, f"{3 * 2**20}\n")
