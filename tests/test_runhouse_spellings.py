"""Runhouse's spellings that keep working: ``rh.send``, ``serialize_notebook_fn``,
and a function's ``ssh()`` and ``notebook()`` (those of its cluster)."""

from __future__ import annotations

import importlib
import sys

import pytest
import userfns

import rh_core as rh


@pytest.fixture
def vanishing_module(tmp_path, monkeypatch):
    """An importable module of the user's that is then deleted: it exists nowhere for the
    cluster to import (as code that was never synced there)."""
    (tmp_path / "rh_vanishing.py").write_text("FACTOR = 3\n\n\ndef triple(x):\n    return x * FACTOR\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("rh_vanishing")
    (tmp_path / "rh_vanishing.py").unlink()
    yield module
    sys.modules.pop("rh_vanishing", None)


def test_send_is_the_older_name_of_function(local, tmp_path):
    remote = rh.send(userfns.concat, name="sent_concat", hardware=local)
    assert isinstance(remote, rh.Function)
    assert remote("run", "house") == "runhouse"

    lib = tmp_path / "sendlib"
    lib.mkdir()
    (lib / "rh_send_mod.py").write_text("__version__ = 'sent'\n")
    version_of = rh.send(fn=userfns.version_of, hardware=local, reqs=[f"local:{lib}"])
    assert version_of("rh_send_mod")[0] == "sent"

    assert rh.send(userfns.add).to(local, name="sent_add")(1, 2) == 3
    with pytest.raises(rh.ConfigError, match="give the cluster once, as system= or hardware="):
        rh.send(userfns.add, system=local, hardware=local)


def test_serialize_notebook_fn_sends_the_function_itself(local, vanishing_module):
    f = rh.function(vanishing_module.triple, serialize_notebook_fn=True)
    assert f.config()["pointer"] is None and f.config()["code"]
    assert f.to(local, name="triple_by_value")(5) == 15

    by_reference = rh.function(vanishing_module.triple)
    assert by_reference.config()["pointer"]["module"] == "rh_vanishing"
    with pytest.raises(rh.RhError, match="rh_vanishing"):
        by_reference.to(local, name="triple_by_reference")(5)


def test_ssh_and_notebook_of_a_function_on_a_cluster_without_ssh(local):
    f = rh.function(userfns.add).to(local)
    message = ("add runs on cluster 'local' \\(provider 'local'\\), which is not reached over "
               "SSH: it has no {}\\(\\)")
    with pytest.raises(rh.ConfigError, match=message.format("ssh")):
        f.ssh()
    with pytest.raises(rh.ConfigError, match=message.format("notebook")):
        f.notebook()
    with pytest.raises(rh.ConfigError, match="not on a cluster yet"):
        rh.function(userfns.add).ssh()
