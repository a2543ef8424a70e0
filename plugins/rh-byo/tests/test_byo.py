"""A bring-your-own cluster over real SSH (a private sshd on 127.0.0.1): bring-up from a node
that has only Python, reuse, redeploy, operations and errors."""

from __future__ import annotations

import os
import time

import pytest
import userfns

import rh_core as rh


def test_bring_up_from_a_bare_node_and_call(node, sshd, capfd):
    assert not (sshd["user_home"] / ".rh" / "venv").exists()
    f = rh.function(userfns.concat).to(node)
    assert f("run", "house") == "runhouse"
    shown = capfd.readouterr().err  # not a terminal: one line per step, with its time
    for step in ("connecting to rhbyo@127.0.0.1", "building the wheelhouse", "shipping wheels",
                 "creating the virtualenv and installing the server", "starting the server",
                 "syncing userpkg"):
        assert f"rh byo-test: {step}" in shown, shown
    # Everything lives under the user's rh home on the node, in its own virtualenv.
    assert (sshd["user_home"] / ".rh" / "venv" / "bin" / "python").exists()
    pid = rh.function(userfns.pid).to(node)()
    owner = open(f"/proc/{pid}/status").read().split("Uid:")[1].split()[0]
    assert int(owner) == __import__("pwd").getpwnam(sshd["user"]).pw_uid  # runs as that user


def test_the_owner_token_reaches_the_node_server_on_stdin_only(node):
    """Not on the server's command line nor in its environment: both are readable in /proc."""
    rh.function(userfns.add).to(node)
    token = node.client().http.headers["authorization"].split()[1].encode()
    pid = node.client().health()["pid"]
    cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
    assert b"--token-stdin" in cmdline and token not in cmdline
    assert token not in open(f"/proc/{pid}/environ", "rb").read()
    assert rh.function(userfns.add).to(node)(2, 3) == 5  # and the server knows it


def test_second_to_finds_everything_ready(node):
    rh.function(userfns.add).to(node)
    server_pid = node.client().health()["pid"]
    again = rh.cluster(name="byo-test", ips=["127.0.0.1"], ssh_creds=node.ssh_creds)
    f = rh.function(userfns.add).to(again)
    assert f(1, 2) == 3
    assert again.client().health()["pid"] == server_pid  # no new server, no reinstall


def test_code_is_synced_and_redeployed(node, tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "remote_mod.py").write_text("def value():\n    return 1\n")
    (proj / ".gitignore").write_text("secret.txt\n")
    (proj / "secret.txt").write_text("do not ship")
    monkeypatch.syspath_prepend(str(proj))
    import remote_mod

    f = rh.function(remote_mod.value).to(node)
    assert f() == 1
    (proj / "remote_mod.py").write_text("def value():\n    return 2\n")
    st = (proj / "remote_mod.py").stat()
    os.utime(proj / "remote_mod.py", ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert rh.function(remote_mod.value).to(node)() == 2
    synced = node.run("ls -a ~/.rh/code/proj-*/")[0][1].split()
    assert "remote_mod.py" in synced and "secret.txt" not in synced


def test_run_commands(node):
    (code, out, err), = node.run("echo hello; echo oops >&2")
    assert (code, out, err) == (0, "hello\n", "oops\n")
    assert node.run(["false"])[0][0] == 1


def test_remote_exception_and_logs(node):
    with pytest.raises(ValueError, match="bad x 7"):
        rh.function(userfns.boom).to(node)(7)
    assert "listening on 127.0.0.1" in node.logs()


def test_dropped_ssh_connection_is_reopened(node):
    f = rh.function(userfns.add).to(node)
    assert f(1, 1) == 2
    node.provider.node.close()  # the master and its tunnel go away
    time.sleep(0.3)
    assert f(2, 2) == 4  # the next call reopens the connection and the tunnel


def test_unreachable_host_says_so(sshd):
    creds = {"ssh_user": sshd["user"], "ssh_private_key": sshd["key"], "ssh_port": 1}
    c = rh.cluster(name="byo-nowhere", ips=["127.0.0.1"], ssh_creds=creds)
    with pytest.raises(rh.ConnectionFailedError, match="cannot reach rhbyo@127.0.0.1"):
        c.up_if_not()


def test_wrong_key_is_refused_clearly(sshd, tmp_path):
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")],
                   check=True)
    creds = {"ssh_user": sshd["user"], "ssh_private_key": str(tmp_path / "k"),
             "ssh_port": sshd["port"]}
    c = rh.cluster(name="byo-badkey", ips=["127.0.0.1"], ssh_creds=creds)
    with pytest.raises(rh.ConnectionFailedError, match="SSH login to .* was refused"):
        c.up_if_not()


def test_changed_host_key_is_refused(sshd, rh_home, tmp_path):
    known = rh_home / "ssh" / "known_hosts"
    saved = known.read_text()
    try:
        other = tmp_path / "other"
        import subprocess

        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                       check=True)
        fake_key = (tmp_path / "other.pub").read_text().split()[:2]
        known.write_text(f"[127.0.0.1]:{sshd['port']} {' '.join(fake_key)}\n")
        creds = {"ssh_user": sshd["user"], "ssh_private_key": sshd["key"],
                 "ssh_port": sshd["port"]}
        c = rh.cluster(name="byo-mitm", ips=["127.0.0.1"], ssh_creds=creds)
        c.provider.node.close()  # a new connection checks the host key (a live master would not)
        with pytest.raises(rh.ConnectionFailedError, match="host key .* is not the one recorded"):
            c.provider.node.run("true")
    finally:
        known.write_text(saved)


def test_unknown_creds_are_refused(sshd):
    with pytest.raises(rh.ConfigError, match="unknown ssh_creds key"):
        rh.cluster(name="x", ips=["127.0.0.1"], ssh_creds={"ssh_usr": "a"})


def test_run_setup_runs_each_command_once(node):
    first = node.run_setup(["echo setup-ran >> ~/.rh/setup-count.txt"])
    assert first[0][0] == 0
    again = node.run_setup(["echo setup-ran >> ~/.rh/setup-count.txt"])
    assert "already run" in again[0][2]
    assert node.run("grep -c setup-ran ~/.rh/setup-count.txt")[0][1].strip() == "1"
    with pytest.raises(rh.ConfigError, match="setup command `false` failed"):
        node.run_setup(["false"])


def test_run_python_uses_the_clusters_python(node):
    (code, out, _), = node.run_python(["import sys, rh_core", "print(sys.prefix, rh_core.__name__)"])
    assert code == 0 and out.strip().endswith(".rh/venv rh_core")


def test_ssh_runs_a_command_and_tunnel_reaches_the_server(node, capfd):
    node.up_if_not()
    assert node.ssh("echo from-the-node") == 0
    assert "from-the-node" in capfd.readouterr().out
    import httpx

    local = node.ssh_tunnel(None, node.provider.port)
    assert httpx.get(f"http://127.0.0.1:{local}/health").json()["status"] == "ok"


def test_notebook_without_jupyter_says_what_to_do(node):
    with pytest.raises(rh.ConfigError, match="JupyterLab is not installed"):
        node.notebook()


def test_cli_ssh_and_status(node, sshd):
    import json
    import subprocess
    import sys

    node.up_if_not()
    node.save("~/byo-test")
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "rh_core.cli", "ssh", "~/byo-test", "echo",
                          "cli-hello"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and "cli-hello" in out.stdout, out.stderr
    out = subprocess.run([sys.executable, "-m", "rh_core.cli", "status", "~/byo-test"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["cluster"] == "byo-test"
    with pytest.raises(rh.ConfigError, match="can only be saved under its own name"):
        node.save("~/another-name")


def test_node_without_python_says_which_host_and_what_was_tried(ssh_tools):
    """A node whose login PATH has no python3 (a second private sshd that sets PATH)."""
    from rh_byo import testing

    bare = testing.start_sshd("rhbyo", fresh_home=False, extra_config="SetEnv PATH=/nonexistent")
    try:
        c = rh.cluster(name="byo-nopython", ips=["127.0.0.1"], ssh_creds=bare.creds)
        with pytest.raises(rh.ConfigError, match="no python3 on rhbyo@127.0.0.1: looked for "
                                                 "`python3` on the login shell's PATH"):
            c.up_if_not()
        c.provider.node.close()
    finally:
        bare.stop()


def test_failing_package_install_on_the_node_shows_pips_output(node):
    env = rh.env(name="broken-remote", reqs=["rh-no-such-package-zzz-404"])
    with pytest.raises(rh.PackageInstallError, match="(?s)rh-no-such-package-zzz-404.*pip said"):
        rh.function(userfns.add).to(node, env=env)
    assert rh.function(userfns.add).to(node)(1, 2) == 3  # the cluster is fine afterwards


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("connection", ["none", "tls"])
def test_direct_connections_to_a_byo_node(sshd, connection):
    import ssl

    import httpx

    creds = {"ssh_user": sshd["user"], "ssh_private_key": sshd["key"], "ssh_port": sshd["port"]}
    kw = {"name": f"byo-{connection}", "ips": ["127.0.0.1"], "ssh_creds": creds,
          "server_connection_type": connection, "server_port": _free_port()}
    with pytest.raises(rh.ConfigError, match="set den_auth=True"):
        rh.cluster(**kw).up_if_not()
    c = rh.cluster(**kw, den_auth=True)
    try:
        assert rh.function(userfns.concat).to(c)("run", "house") == "runhouse"
        info = c.client().info
        scheme = "https" if connection == "tls" else "http"
        assert info.base_url == f"{scheme}://127.0.0.1:{kw['server_port']}"  # no tunnel
        token = c.grant("alice", "read")
        verify = ssl.create_default_context(cafile=info.verify) if connection == "tls" else False
        r = httpx.get(f"{info.base_url}/concat/call?a=run&b=house", verify=verify,
                      headers={"Authorization": f"Bearer {token}"})
        assert r.json() == "runhouse"
        assert httpx.get(f"{info.base_url}/keys", verify=verify).status_code == 401
    finally:
        c.down()


def test_proxy_jump_through_another_host(sshd):
    """The node reached through a jump host: a second private sshd (the same test user and
    key), given as ssh_proxy_jump."""
    from rh_byo import testing

    jump = testing.start_sshd("rhbyo", fresh_home=False)
    try:
        (jump.dir / "authorized_keys").write_text(open(sshd["key"] + ".pub").read())
        creds = {"ssh_user": sshd["user"], "ssh_private_key": sshd["key"],
                 "ssh_port": sshd["port"],
                 "ssh_proxy_jump": f"{jump.user}@127.0.0.1:{jump.port}"}
        c = rh.cluster(name="byo-jump", ips=["127.0.0.1"], ssh_creds=creds)
        c.provider.node.close()
        (code, out, _), = c.run("echo via-jump")
        assert (code, out) == (0, "via-jump\n")
        log = (jump.dir / "sshd.log").read_text()
        assert "Accepted publickey for rhbyo" in log  # the jump host carried the connection
        c.provider.node.close()
    finally:
        jump.stop()


def test_proxy_command_carries_the_connection(node, sshd, rh_home, tmp_path):
    """ssh_proxy_command: the running byo-test node reached through a ProxyCommand, `ssh -W`
    through the same loopback sshd, wrapped in a script that notes each time it runs."""
    used = tmp_path / "proxy-used"
    proxy = tmp_path / "proxy.sh"
    proxy.write_text(
        "#!/bin/sh\n"
        f'echo "$1:$2" >> {used}\n'
        f"exec ssh -i {sshd['key']} -p {sshd['port']} -o BatchMode=yes -o IdentitiesOnly=yes "
        f"-o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={rh_home}/ssh/known_hosts "
        f'-W "$1:$2" {sshd["user"]}@127.0.0.1\n')
    proxy.chmod(0o755)
    creds = {**node.ssh_creds, "ssh_proxy_command": f"{proxy} %h %p"}
    c = rh.cluster(name="byo-test", ips=["127.0.0.1"], ssh_creds=creds)
    try:
        # Probe, code sync (rsync) and the tunnel to the server all go through the proxy.
        assert rh.function(userfns.add).to(c)(2, 3) == 5
        assert c.run("echo via-proxy") == [(0, "via-proxy\n", "")]
        assert used.read_text().splitlines() == [f"127.0.0.1:{sshd['port']}"]  # one master
    finally:
        c.provider.node.close()
    # paramiko cannot run a ProxyCommand: refused before anything is tried.
    over_paramiko = rh.cluster(name="byo-proxy-pm", ips=["127.0.0.1"], ssh_creds=creds,
                               server_connection_type="paramiko")
    with pytest.raises(rh.ConfigError, match="^ssh_proxy_command needs the OpenSSH client"):
        over_paramiko.run("true")
