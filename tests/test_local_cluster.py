"""The embedded local cluster: started on first use, recorded, reused, restarted, stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import userfns

import rh_core as rh


def _client_process(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_later_client_processes_reuse_the_server(local):
    pid = local.client().health()["pid"]
    code = """
        import rh_core as rh
        c = rh.cluster("local")
        print(c.client().health()["pid"])
    """
    assert int(_client_process(code)) == pid
    assert int(_client_process(code)) == pid


def test_here_is_the_local_cluster(local):
    assert isinstance(rh.here, type(local)) and rh.here.name == "local"


def test_first_use_starts_and_records_the_server(own_cluster, rh_home):
    assert not own_cluster.is_up()
    f = rh.function(userfns.add).to(own_cluster)
    assert f(1, 2) == 3
    record = json.loads((rh_home / "clusters" / own_cluster.name / "server.json").read_text())
    assert record["pid"] == own_cluster.client().health()["pid"]
    assert record["host"] == "127.0.0.1"
    assert "token" not in record
    token = own_cluster.client().http.headers["authorization"].split()[1]
    assert token not in (rh_home / "clusters" / own_cluster.name / "server.json").read_text()
    assert oct((rh_home / "secrets" / "owner.key").stat().st_mode & 0o777) == "0o600"


def test_stale_record_is_replaced(own_cluster, rh_home):
    folder = rh_home / "clusters" / own_cluster.name
    folder.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / "server.json").write_text(json.dumps({"pid": dead.pid, "host": "127.0.0.1",
                                                    "port": 1}))
    assert rh.function(userfns.add).to(own_cluster)(2, 2) == 4
    record = json.loads((folder / "server.json").read_text())
    assert record["pid"] != dead.pid


def test_restart_server_keeps_served_names(own_cluster):
    f = rh.function(userfns.concat).to(own_cluster)
    handle = f.remote("a", "b")
    assert rh.get(handle) == "ab"
    old = own_cluster.client().health()["pid"]
    own_cluster.restart_server()
    assert own_cluster.client().health()["pid"] != old
    assert f("c", "d") == "cd"  # served again after the restart
    with pytest.raises(rh.RunNotFoundError, match="server restarted"):
        rh.get(handle)


def test_down_stops_the_server(own_cluster):
    rh.function(userfns.add).to(own_cluster)
    pid = own_cluster.client().health()["pid"]
    own_cluster.down()
    assert not own_cluster.is_up()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_server_log_is_written_and_shown(local):
    assert "listening on 127.0.0.1" in local.logs()


def test_cli_status_and_logs(local):
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "rh_core.cli", "status", "local"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["cluster"] == "local"
    out = subprocess.run([sys.executable, "-m", "rh_core.cli", "logs"], capture_output=True,
                         text=True, env=env, timeout=60)
    assert "listening on" in out.stdout


def test_status_of_a_cluster_that_is_not_up(own_cluster):
    out = subprocess.run([sys.executable, "-m", "rh_core.cli", "status", "nosuch"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "unknown cluster 'nosuch'" in out.stderr


def test_server_killed_mid_session_is_brought_back_on_the_next_call(own_cluster):
    f = rh.function(userfns.concat).to(own_cluster)
    assert f("a", "b") == "ab"
    pid = own_cluster.client().health()["pid"]
    os.kill(pid, 9)  # the server dies without cleaning up: its record is stale now
    import time

    time.sleep(0.5)  # a call racing the kill itself fails with "outcome is unknown" (next test)
    assert f("c", "d") == "cd"  # the client reconnects to a new server, which serves f again
    assert own_cluster.client().health()["pid"] != pid


def test_call_when_the_server_dies_fails_clearly(own_cluster):
    f = rh.function(userfns.sleep_then).to(own_cluster)
    import threading

    errors = []

    def slow():
        try:
            f("x", 3)
        except Exception as e:  # noqa: BLE001 - what the user sees
            errors.append(e)

    t = threading.Thread(target=slow)
    t.start()
    import time

    time.sleep(0.5)
    os.kill(own_cluster.client().health()["pid"], 9)  # the server dies while the call runs
    t.join(30)
    assert errors and isinstance(errors[0], (rh.ConnectionFailedError, rh.WorkerCrashedError))
    assert "outcome is unknown" in str(errors[0])
    time.sleep(0.5)
    assert f("y", 0) == "y"  # the next call brings the server back
