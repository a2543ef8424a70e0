"""An on-demand cluster's life: launch, bring-up, calls, reuse, stop, start, down.

Boundary: the SkyPilot SDK functions (``tests/sky_standin.py``, named by RH_SKYPILOT_SDK):
launch, status, stop, down, autostop, get and stream_and_get are the stand-in's, which
records them and reports the session's real sshd on 127.0.0.1 as the cluster's head node.
Everything after that runs for real: the SSH details taken from the status record (the key
from its content), rh-byo's bring-up over SSH, the rh server, calls, streamed logs, the
watcher job on the node, and stopping the server before the nodes go.
"""

from __future__ import annotations

import os
import pwd

import pytest
import userfns
from conftest import wait_for
from rh_byo.ssh import free_port
from rh_skypilot.errors import NotOursError

import rh_core as rh


@pytest.fixture
def clusters(standin):
    """``clusters(name, **fields)``: on-demand clusters of the test, each with a server port of
    its own (they share the one sshd), brought down at its end."""
    made = []

    def make(name, **fields):
        c = rh.ondemand_cluster(name=name, **{"instance_type": "CPU:2", "provider": "aws",
                                              "server_port": free_port(), **fields})
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.down()
        except NotOursError:
            pass  # a cluster the test showed rh refusing


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_launch_bring_up_call_and_down(clusters, standin, sshd, capfd, rh_home):
    c = clusters("sky-life")
    f = rh.function(userfns.add).to(c)
    assert f(1, 2) == 3

    # SkyPilot was asked for the cluster, launched it with rh's task, then read again.
    (launch,) = standin.calls("launch")
    task = launch[1]["task"]
    assert launch[1]["cluster_name"] == "sky-life"
    assert task["resources"]["labels"] == {"rh-cluster": "sky-life"}
    assert task["resources"]["cpus"] == "2" and task["resources"]["infra"] == "aws"
    assert "server.json" in task["run"]  # rh's watcher is the cluster's job
    statuses = standin.calls("status")
    assert statuses and all(s[1]["include_credentials"] for s in statuses)

    # SkyPilot's provisioning log went through rh's progress display.
    shown = capfd.readouterr().err
    for line in ("rh sky-life: asking SkyPilot for the cluster's status",
                 "rh sky-life:   Launching sky-life", "rh sky-life:   ✓ Cluster launched",
                 "rh sky-life: launching 1 node(s) through SkyPilot (CPU:2 on aws)",
                 "rh sky-life: connecting to rhsky@127.0.0.1", "rh sky-life: starting the server"):
        assert line in shown, shown
    assert "\x1b[" not in shown and "sky-payload" not in shown

    # The SSH details came from SkyPilot's record: the key from its content, in rh's home.
    key = rh_home / "clusters" / "sky-life" / "sky-key"
    assert c.ssh_creds["ssh_private_key"] == str(key)
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert c.ips == ["127.0.0.1"] and c.ssh_creds["ssh_port"] == sshd.port

    # The node's server runs as the node's user; the watcher job waits on it.
    pid = rh.function(userfns.pid).to(c)()
    owner = int(open(f"/proc/{pid}/status").read().split("Uid:")[1].split()[0])
    assert owner == pwd.getpwnam(sshd.user).pw_uid
    job = standin.load()["clusters"]["sky-life"]["job_pid"]
    assert _alive(job)

    # The config was saved: the cluster loads by name, up, without a second launch.
    again = rh.cluster("sky-life")
    assert again.is_up()
    assert rh.function(userfns.add).to(again)(2, 3) == 5
    assert len(standin.calls("launch")) == 1
    server_pid = c.client().health()["pid"]

    c.down()
    assert standin.calls("down")[-1][1] == {"cluster_name": "sky-life"}
    assert rh.cluster("sky-life").ips is None  # the saved config keeps no old addresses
    wait_for(lambda: not _alive(server_pid), 10)  # stopped before the nodes went
    wait_for(lambda: not _alive(job), 15)  # the job ended as the nodes went
    assert not c.is_up()
    status = c.status()
    assert status["skypilot"]["status"] is None
    assert "SkyPilot has no cluster named 'sky-life'" in status["skypilot"]["message"]
    downs = len(standin.calls("down"))
    c.down()  # idempotent: nothing to tear down, SkyPilot is not asked to
    assert len(standin.calls("down")) == downs


def test_stream_logs_and_remote_errors(clusters, capfd):
    c = clusters("sky-logs")
    shout = rh.function(userfns.shout).to(c)
    capfd.readouterr()
    shout("hello from the node", stream_logs=True)
    assert "hello from the node" in capfd.readouterr().out
    with pytest.raises(ValueError, match="bad x 7"):
        rh.function(userfns.boom).to(c)(7)
    assert "listening on 127.0.0.1" in c.logs()


def test_status_shows_skypilots_record_and_the_servers(clusters, standin):
    c = clusters("sky-status", autostop_mins=-1)
    c.up()
    status = c.status(refresh=True)
    assert status["skypilot"]["status"] == "UP"
    assert status["skypilot"]["made_by_rh"] is True
    assert status["skypilot"]["cloud"] == "aws"
    assert status["cluster"] == "sky-status"  # the server's own status beside it
    assert standin.calls("status")[-1][1]["refresh"] == "FORCE"


def test_stop_then_up_starts_the_nodes_again(clusters, standin, capfd):
    c = clusters("sky-stop")
    assert rh.function(userfns.add).to(c)(1, 1) == 2
    server_pid = c.client().health()["pid"]
    c.stop()
    wait_for(lambda: not _alive(server_pid), 10)
    assert c.status()["skypilot"]["status"] == "STOPPED"
    assert c.ips is None
    capfd.readouterr()
    assert rh.function(userfns.add).to(c)(2, 2) == 4
    assert "starting the stopped nodes through SkyPilot" in capfd.readouterr().err
    assert len(standin.calls("launch")) == 2


def test_ssh_and_endpoint(clusters, capfd):
    c = clusters("sky-ssh")
    assert c.endpoint() is None  # not launched yet: nothing answers
    c.up()
    assert c.endpoint().startswith("http://127.0.0.1:")
    assert c.ssh("echo on-the-node") == 0
    assert "on-the-node" in capfd.readouterr().out


def test_a_cluster_rh_did_not_launch_is_left_alone(clusters, standin, sshd):
    """A SkyPilot cluster of the same name without rh's label: rh refuses to use it, to stop
    it or to tear it down, unless take_over=True."""
    import sky

    task = sky.Task.from_yaml_config({"name": "theirs", "resources": {"cpus": "2"}})
    standin.get(standin.launch(task, cluster_name="sky-theirs"))
    c = rh.ondemand_cluster(name="sky-theirs", instance_type="CPU:2")
    for action in (c.up, c.down, c.stop):
        with pytest.raises(NotOursError, match="rh did not launch: rh leaves it alone.*"
                                               "take_over=True"):
            action()
    assert standin.load()["clusters"]["sky-theirs"]["status"] == "UP"
    assert not standin.calls("down") and not standin.calls("stop")

    taken = clusters("sky-theirs", take_over=True)
    assert rh.function(userfns.add).to(taken)(3, 4) == 7
    assert len(standin.calls("launch")) == 1  # it was UP: used as it is


def test_teardown_and_delete(clusters):
    c = clusters("sky-gone")
    c.up()
    assert rh.exists("~/sky-gone")
    c.teardown_and_delete()
    assert not rh.exists("~/sky-gone")
    assert c.status()["skypilot"]["status"] is None


def test_skypilots_proxy_command_carries_the_connection(clusters, standin, sshd, tmp_path):
    """A record whose credentials carry a proxy command (as SkyPilot's do for Kubernetes pods
    and clusters behind a jump host): rh's SSH goes through it. The proxy is ``ssh -W``
    through the same loopback sshd, in a script that notes each time it runs."""
    used = tmp_path / "proxy-used"
    proxy = tmp_path / "proxy.sh"
    proxy.write_text(
        "#!/bin/sh\n"
        f'echo "$1:$2" >> {used}\n'
        f"exec ssh -i {sshd.key} -p {sshd.port} -o BatchMode=yes -o IdentitiesOnly=yes "
        f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
        f'-W "$1:$2" {sshd.user}@127.0.0.1\n')
    proxy.chmod(0o755)
    standin.configure([{"host": sshd.host, "port": sshd.port, "user": sshd.user,
                        "key": sshd.key, "proxy_command": f"{proxy} %h %p"}])
    c = clusters("sky-proxy")
    assert rh.function(userfns.add).to(c)(2, 3) == 5
    assert c.ssh_creds["ssh_proxy_command"] == f"{proxy} %h %p"
    assert used.read_text().splitlines() == [f"127.0.0.1:{sshd.port}"]  # one SSH master


def test_the_seeds_tls_cluster_with_den_auth(clusters, standin):
    """The seeds' form: ``open_ports=[443]``, ``server_connection_type="tls"``,
    ``den_auth=True``. The server's own port is opened with 443 and serves https at the node's
    address (here 127.0.0.1) with the cluster's certificate; a token is needed there."""
    import ssl

    import httpx

    c = clusters("sky-tls", open_ports=[443], server_connection_type="tls", den_auth=True)
    assert rh.function(userfns.concat).to(c)("run", "house") == "runhouse"
    ports = standin.calls("launch")[0][1]["task"]["resources"]["ports"]
    assert ports == ["443", str(c.server_port)]
    info = c.client().info
    assert info.base_url == f"https://127.0.0.1:{c.server_port}"  # no tunnel
    verify = ssl.create_default_context(cafile=info.verify)
    token = c.grant("alice", "read")
    r = httpx.get(f"{info.base_url}/concat/call?a=run&b=house", verify=verify,
                  headers={"Authorization": f"Bearer {token}"})
    assert r.json() == "runhouse"
    assert httpx.get(f"{info.base_url}/keys", verify=verify).status_code == 401


def test_a_builtin_config_launches_and_is_saved_under_home(standin):
    c = rh.cluster("^rh-cpu")
    c.server_port = free_port()
    try:
        assert rh.function(userfns.add).to(c)(1, 2) == 3
        resources = standin.calls("launch")[0][1]["task"]["resources"]
        assert resources["cpus"] == "4+" and "infra" not in resources  # cheapest cloud
        assert rh.cluster("~/rh-cpu").instance_type == "CPU:4+"
    finally:
        c.teardown_and_delete()
    assert not rh.exists("~/rh-cpu")
