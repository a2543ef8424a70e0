"""The embedded local cluster: started on first use, recorded, reused, restarted, stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import held_import
import pytest
import userfns
from waiting import wait_until

import rh_core as rh
from rh_core.builtin.local import process_alive


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


def test_status_of_an_unknown_cluster_says_so():
    out = subprocess.run([sys.executable, "-m", "rh_core.cli", "status", "nosuch"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("error: unknown cluster 'nosuch'")


def _connections_to(port: int) -> int:
    """Connections on this machine to ``port`` that have not seen it close yet (ESTABLISHED in
    /proc/net/tcp). A killed server's close reaches its clients' sockets a moment after the
    process is gone; a call sent on a kept-alive connection before that fails with "outcome is
    unknown": the race test_call_when_the_server_dies_fails_clearly shows."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    return sum(1 for row in rows if int(row[2].split(":")[1], 16) == port and row[3] == "01")


def _gone(cluster, pid: int) -> bool:
    """The killed server ``pid`` has exited and every connection to it has seen it close."""
    port = int(cluster.client().info.base_url.rsplit(":", 1)[1])
    return not process_alive(pid) and _connections_to(port) == 0


def test_server_killed_mid_session_is_brought_back_on_the_next_call(own_cluster):
    f = rh.function(userfns.concat).to(own_cluster)
    assert f("a", "b") == "ab"
    pid = own_cluster.client().health()["pid"]
    os.kill(pid, 9)  # the server dies without cleaning up: its record is stale now
    # Once it is gone (a call racing the kill itself fails with "outcome is unknown", below):
    wait_until(lambda: _gone(own_cluster, pid), 10, f"the killed server {pid} to be gone")
    assert f("c", "d") == "cd"  # the client reconnects to a new server, which serves f again
    assert own_cluster.client().health()["pid"] != pid


@pytest.mark.parametrize("stream_logs", [False, True], ids=["plain", "streamed"])
def test_call_when_the_server_dies_fails_clearly(own_cluster, tmp_path, stream_logs):
    """The server dies while a call runs (streamed: while the call reads its frames)."""
    f = rh.function(userfns.start_then_wait).to(own_cluster)
    started, release = tmp_path / "started", tmp_path / "release"
    errors = []

    def call():
        try:
            f(str(started), str(release), stream_logs=stream_logs)
        except Exception as e:  # noqa: BLE001 - what the user sees
            errors.append(e)

    t = threading.Thread(target=call)
    t.start()
    wait_until(started.exists, 20, "the call to start running")
    pid = own_cluster.client().health()["pid"]
    os.kill(pid, 9)  # the server dies while the call runs
    t.join(30)
    assert not t.is_alive()
    assert len(errors) == 1 and type(errors[0]) is rh.ConnectionFailedError, errors
    assert f"the server of cluster {own_cluster.name!r} closed the connection" in str(errors[0])
    assert "The call's outcome is unknown" in str(errors[0])
    wait_until(lambda: _gone(own_cluster, pid), 10, f"the killed server {pid} to be gone")
    release.write_text("go")
    assert f(str(tmp_path / "again"), str(release), "y") == "y"  # the next call brings it back
    assert own_cluster.client().health()["pid"] != pid


def test_served_names_are_listed_right_after_a_restart(own_cluster, tmp_path):
    hold = tmp_path / "hold"
    env = rh.env(name="held", env_vars={"RH_HOLD_IMPORT": str(hold)})
    f = rh.function(held_import.value).to(own_cluster, env=env)
    assert f() == "restored"
    hold.write_text("hold")  # the restarted server's import of the module waits for it
    listed = {}
    try:
        own_cluster.restart_server()
        t = threading.Thread(target=lambda: listed.setdefault("keys", own_cluster.keys()))
        t.start()
        t.join(5)  # a server that finishes restoring before it answers /keys is still waiting
    finally:
        hold.unlink()
    t.join(30)
    assert listed["keys"] == ["value"]
    assert f() == "restored"


@pytest.mark.parametrize("connection", [
    "none",
    "tls",
])
def test_sigterm_stops_the_server_while_a_client_keeps_a_connection(rh_home, connection):
    cluster = rh.cluster(name=f"t-sigterm-{connection}", provider="local",
                         server_connection_type=connection)
    try:
        assert rh.function(userfns.concat).to(cluster)("a", "b") == "ab"  # a kept-alive connection
        pid = cluster.client().health()["pid"]
        os.kill(pid, signal.SIGTERM)  # what down() and `rh down` send, from any process
        wait_until(lambda: not process_alive(pid), 5, "the server to stop after SIGTERM")
        assert cluster.logs().endswith("rh server stopped\n")  # it stopped gracefully
    finally:
        cluster.down()  # closes this client's connections first, so the server stops anyway
