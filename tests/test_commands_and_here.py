"""Shell commands and Python on any cluster (the local one here), code on a cluster reaching
its own cluster through rh.here, and the output of calls it makes streamed to the outer caller.
On the real local cluster and its real server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import userfns

import rh_core as rh


def test_run_and_run_python_on_the_local_cluster(local):
    out = local.run(["echo hello", "pwd", "exit 3"])
    assert out[0] == (0, "hello\n", "")
    assert out[1] == (0, f"{Path.home()}\n", "")  # in the server user's home folder
    assert out[2][0] == 3
    [(code, stdout, stderr)] = local.run_python(["import sys", "print(sys.version_info[0])"])
    assert (code, stdout) == (0, "3\n")
    [(code, _, stderr)] = local.run_python("raise SystemExit('no')")
    assert code == 1 and "no" in stderr
    [(code, stdout, _)] = local.run(["sleep 5"], timeout=0.5)
    assert code != 0


def test_run_python_with_an_envs_python(local, tmp_path):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "marker_mod.py").write_text("VALUE = 41\n")
    env = rh.env(name="with_marker", reqs=[f"local:{tmp_path / 'mods'}"])
    rh.function(userfns.getenv).to(local, env=env)  # the env's virtualenv is built
    [(code, stdout, _)] = local.run_python(["import sys, marker_mod",
                                            "print(marker_mod.VALUE + 1, sys.executable)"],
                                           env="with_marker")
    value, python = stdout.split()
    assert code == 0 and value == "42" and "/envs/" in python
    [(code, _, stderr)] = local.run_python("import marker_mod")  # not in the server's Python
    assert code == 1 and "ModuleNotFoundError" in stderr


def test_run_setup_runs_each_command_once(own_cluster, tmp_path):
    log = tmp_path / "ran"
    cmds = [f"echo one >> {log}", f"echo two >> {log}"]
    first = own_cluster.run_setup(cmds)
    assert [c for c, _, _ in first] == [0, 0]
    second = own_cluster.run_setup(cmds + [f"echo three >> {log}"])
    assert second[0] == (0, "", "(already run on this cluster)")
    assert log.read_text() == "one\ntwo\nthree\n"
    with pytest.raises(rh.ConfigError, match="setup command `exit 7` failed .*exit code 7"):
        own_cluster.run_setup(["exit 7"])
    with pytest.raises(rh.ConfigError):
        own_cluster.run_setup(["exit 7"])  # a failure is not recorded: it runs again


def test_commands_need_write_access(secure):
    import httpx

    reader = secure.grant("runner", "read")
    r = httpx.post(f"{secure.client().info.base_url}/commands", json={"commands": ["id"]},
                   headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 403 and r.json()["error"]["kind"] == "auth"


def test_code_on_the_cluster_reaches_it_through_rh_here(secure):
    """den_auth is on: rh.here uses the worker's own token, never the owner's."""
    f = rh.function(userfns.here_keys_and_run).to(secure)
    keys, ran, kind = f("from_inside")
    assert "from_inside" in keys and "here_keys_and_run" in keys
    assert ran == [(0, "inside\n", "")]
    assert kind == "HereCluster"
    assert secure.get("from_inside") == {"from": "inside"}
    [(code, stdout, _)] = secure.run_python(["import rh_core as rh",
                                             "print(sorted(rh.here.keys())[:1])"])
    assert code == 0 and stdout.startswith("[")  # commands run there can use rh.here too


def test_outside_any_cluster_here_is_the_local_cluster(rh_home):
    assert "RH_CLUSTER_URL" not in os.environ
    assert rh.here.name == "local"


def test_output_of_nested_calls_streams_to_the_outer_caller(local, capfd):
    rh.function(userfns.inner_printer).to(local)
    outer = rh.function(userfns.outer_calls_inner).to(local)
    assert outer(2, stream_logs=True) == 2
    out = capfd.readouterr().out
    assert out.index("outer starts") < out.index("inner line 0") < out.index("inner line 1") \
        < out.index("outer ends")
    assert outer(1) == 1
    assert "inner line" not in capfd.readouterr().out  # without stream_logs, nothing is shown


def test_keep_warm_returns_the_cluster(local):
    assert local.keep_warm(mins=30) is local


def test_map_items_output_streams_when_asked(local, capfd):
    shout = rh.function(userfns.shout).to(local)
    assert shout.map([1, 2, 3], stream_logs=True) == [10, 20, 30]
    out = capfd.readouterr().out
    assert all(f"item {i} here" in out for i in (1, 2, 3))
    assert shout.map([4]) == [40]
    assert "item 4" not in capfd.readouterr().out


def test_a_map_made_by_code_on_the_cluster_streams_to_the_outer_caller(local, capfd):
    rh.function(userfns.shout).to(local)
    outer = rh.function(userfns.outer_maps).to(local)
    assert outer(2, stream_logs=True) == [0, 10]
    out = capfd.readouterr().out
    assert "outer maps" in out and "item 0 here" in out and "item 1 here" in out
