"""Results kept on the cluster: ``.remote()`` handles, their logs, chosen run keys, and handles
passed into other calls, whose results are handed over on the cluster."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import types

import pytest
import userfns
from waiting import wait_until

import rh_core as rh


def _status(cluster, handle) -> str:
    runs = {r["run_key"]: r for r in cluster.client().get_json("/runs")["runs"]}
    return runs[handle.run_key]["status"]


def test_remote_returns_at_once_and_result_waits(local, tmp_path):
    f = rh.function(userfns.start_then_wait).to(local)
    started, release = tmp_path / "started", tmp_path / "release"
    handle = f.remote(str(started), str(release), "finished")
    wait_until(started.exists, 20, "the run to start")
    assert _status(local, handle) == "running"  # .remote() came back while the run goes on
    release.write_text("go")
    assert handle.result() == "finished"
    assert _status(local, handle) == "done"
    assert rh.get(handle) == "finished"  # the result stays until deleted: read it again
    handle.delete()
    assert handle.run_key not in local.client().get_json("/keys")["runs"]


def test_logs_arrive_while_the_run_goes_on(local, tmp_path):
    f = rh.function(userfns.print_then_wait).to(local)
    marker = tmp_path / "go"
    handle = f.remote(str(marker))
    text = ""
    for chunk in handle.logs():
        text += chunk
        if "to stderr" in text and not marker.exists():
            assert _status(local, handle) == "running"  # these lines came while it ran
            marker.write_text("go")
    assert text == "first line\nto stderr\nsecond line\n"
    assert handle.result() == "done"
    assert "".join(handle.logs()) == text  # kept with the result


def test_run_key_chooses_the_key(local):
    f = rh.function(userfns.add).to(local)
    prefix = "nightly:2026-01-01@v1.2_x-"  # every kind of character a key may have
    key = prefix + "k" * (200 - len(prefix))  # and as long as it may be
    handle = f.remote(1, 2, run_key=key)
    assert handle.run_key == key and len(key) == 200
    assert rh.get(rh.RunHandle(key, local.config())) == 3  # the key is all it takes to fetch it
    with pytest.raises(rh.ServerError, match=f"^run key '{key[:79]}.* is in use") as info:
        f.remote(5, 5, run_key=key)
    assert info.value.status == 400
    assert rh.get(handle) == 3  # the first run's result is untouched
    handle.delete()
    assert rh.get(f.remote(5, 5, run_key=key)) == 10  # deleted, the key is free again
    for bad in ["has space", "x" * 201, "a/b", "é", ""]:
        with pytest.raises(rh.ServerError, match="^bad run key .*use 1-200 letters") as info:
            f.remote(1, 1, run_key=bad)
        assert info.value.status == 400, bad


def test_handle_passed_to_another_call_stays_on_the_cluster(local, tmp_path):
    folder = tmp_path / "cluster_only"
    folder.mkdir()
    (folder / "rh_cluster_only.py").write_text(
        "class Vectors:\n    def __init__(self, rows):\n        self.rows = rows\n")
    env = rh.env(name="cluster_only", reqs=[f"local:{folder}"])
    make = rh.function(userfns.make_vectors).to(local, env=env)
    count = rh.function(userfns.count_rows).to(local, env=env)
    vectors = make.remote(3)
    # This client cannot even read the result (its class exists only on the cluster), so the
    # calls below can only work if the server hands it over there.
    with pytest.raises(ModuleNotFoundError, match="rh_cluster_only"):
        rh.get(vectors)
    assert count(vectors) == 3
    assert rh.get(count.remote(vectors)) == 3
    assert count.map([vectors, vectors]) == [3, 3]


def test_handles_anywhere_in_the_arguments(local):
    make = rh.function(userfns.make_list).to(local)
    echo = rh.function(userfns.echo).to(local)
    rows = make.remote(3)
    assert echo({"rows": [rows, "x"]}) == {"rows": [[0, 1, 2], "x"]}
    assert echo(types.SimpleNamespace(rows=rows)).rows == [0, 1, 2]
    assert echo.map([rows, 5]) == [[0, 1, 2], 5]


def test_a_handle_of_a_run_still_going_is_waited_for(local, tmp_path):
    slow = rh.function(userfns.start_then_wait).to(local)
    echo = rh.function(userfns.echo).to(local)
    started, release = tmp_path / "started", tmp_path / "release"
    first = slow.remote(str(started), str(release), "late value")
    wait_until(started.exists, 20, "the first run to start")
    second = echo.remote(first)  # its argument exists only once the first run has finished
    release.write_text("go")
    assert rh.get(second) == "late value"


def test_a_failed_run_passed_as_an_argument_fails_the_call_with_424(local):
    failed = rh.function(userfns.boom).to(local).remote(1)
    total = rh.function(userfns.total).to(local)
    with pytest.raises(rh.ServerError) as info:
        total(failed)
    assert type(info.value) is rh.ServerError and info.value.status == 424
    assert str(info.value).startswith(f"argument run '{failed.run_key}' failed: ValueError: bad x 1")


def test_a_pickled_handle_works_in_another_process(local):
    handle = rh.function(userfns.concat).to(local).remote("run", "house")
    code = "import pickle, sys, rh_core as rh; print(rh.get(pickle.loads(sys.stdin.buffer.read())))"
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(handle),
                         capture_output=True, timeout=120, env=dict(os.environ))
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == b"runhouse\n"
