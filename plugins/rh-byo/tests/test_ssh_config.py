"""``ssh <cluster-name>`` from a terminal, and a function's ``ssh()`` and ``notebook()``.

Bring-up writes the cluster's ``Host`` entry into rh's ssh config, which the user's ssh config
includes; ``down()`` removes the entry. The real OpenSSH client logs in to the session's sshd
with the files rh wrote. No test touches the ``~/.ssh/config`` of the machine: the session's
``RH_SSH_CONFIG`` points elsewhere, and the test of the default puts ``HOME`` in a temporary
folder.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import userfns
from rh_byo import testing
from rh_byo.ssh import free_port
from rh_byo.ssh_config import INCLUDE_COMMENT

import rh_core as rh


def _ssh(config: Path, host: str, *command: str) -> subprocess.CompletedProcess:
    """``ssh -F config host command``, as a user types it (no agent, no prompt)."""
    return subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", host, *command],
                          capture_output=True, text=True, timeout=60)


def test_ssh_to_the_cluster_by_its_name(node, user_ssh_config, sshd):
    node.up()
    out = _ssh(user_ssh_config, "byo-test", "true")
    assert out.returncode == 0, out.stderr
    out = _ssh(user_ssh_config, "byo-test", "echo", "I am", "$(whoami)")
    assert out.stdout == f"I am {sshd['user']}\n"


def test_bring_up_adds_the_include_to_the_users_config_and_down_removes_the_host(
        own_cluster, sshd, rh_home, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # the default: ~/.ssh/config, here this test's
    monkeypatch.delenv("RH_SSH_CONFIG")
    cluster = own_cluster("byo-sshcfg").up()

    user_config = home / ".ssh" / "config"
    rh_file = rh_home / "ssh" / "config"
    assert user_config.read_text() == f"{INCLUDE_COMMENT}\nInclude {rh_file}\n"
    assert (home / ".ssh").stat().st_mode & 0o777 == 0o700
    assert user_config.stat().st_mode & 0o777 == 0o600
    assert rh_file.stat().st_mode & 0o777 == 0o600
    entry = rh_file.read_text().split("Host byo-sshcfg\n", 1)[1].split("\n\n")[0]
    assert entry.splitlines() == [
        "    HostName 127.0.0.1", f"    User {sshd['user']}", f"    Port {sshd['port']}",
        f"    IdentityFile {sshd['key']}", "    IdentitiesOnly yes",
        f"    UserKnownHostsFile {rh_home / 'ssh' / 'known_hosts'}",
        "    StrictHostKeyChecking yes"]
    out = _ssh(user_config, "byo-sshcfg", "echo", "up")
    assert (out.returncode, out.stdout) == (0, "up\n"), out.stderr

    cluster.down()
    assert "byo-sshcfg" not in rh_file.read_text()
    out = _ssh(user_config, "byo-sshcfg", "true")
    assert out.returncode == 255 and "byo-sshcfg" in out.stderr  # no such host any more
    assert user_config.read_text() == f"{INCLUDE_COMMENT}\nInclude {rh_file}\n"


def test_the_users_own_config_is_kept_and_included_once(own_cluster, rh_home, tmp_path,
                                                        monkeypatch):
    dotfile = tmp_path / "dotfiles" / "ssh_config"
    dotfile.parent.mkdir()
    mine = "Host *\n    ServerAliveInterval 30\n\nHost byo-mine\n    HostName 10.9.9.9\n"
    dotfile.write_text(mine)
    dotfile.chmod(0o640)
    link = tmp_path / "config"
    link.symlink_to(dotfile)  # a config kept with one's dotfiles
    monkeypatch.setenv("RH_SSH_CONFIG", str(link))

    cluster = own_cluster("byo-sshcfg-kept").up()
    cluster.restart_server()  # a second bring-up
    own_cluster("byo-mine").up()  # a Host of the user's own: theirs stays in charge

    assert link.is_symlink()
    assert dotfile.read_text() == f"{INCLUDE_COMMENT}\nInclude {rh_home / 'ssh' / 'config'}\n\n{mine}"
    assert dotfile.stat().st_mode & 0o777 == 0o640
    rh_text = (rh_home / "ssh" / "config").read_text()
    assert "Host byo-sshcfg-kept\n" in rh_text and "byo-mine" not in rh_text
    assert _ssh(link, "byo-sshcfg-kept", "true").returncode == 0


def test_the_entry_goes_through_the_clusters_proxy_command(sshd, rh_home, user_ssh_config,
                                                           tmp_path):
    used = tmp_path / "proxy-used"
    proxy = tmp_path / "proxy.sh"
    proxy.write_text(
        "#!/bin/sh\n"
        f'echo "$1:$2" >> {used}\n'
        f"exec ssh -i {sshd['key']} -p {sshd['port']} -o BatchMode=yes -o IdentitiesOnly=yes "
        f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={rh_home}/ssh/known_hosts "
        f'-W "$1:$2" {sshd["user"]}@127.0.0.1\n')
    proxy.chmod(0o755)
    creds = {"ssh_user": sshd["user"], "ssh_private_key": sshd["key"], "ssh_port": sshd["port"],
             "ssh_proxy_command": f"{proxy} %h %p"}
    cluster = rh.cluster(name="byo-sshcfg-proxy", ips=["127.0.0.1"], ssh_creds=creds,
                         server_port=free_port())
    try:
        cluster.up()
        before = len(used.read_text().splitlines())
        out = _ssh(user_ssh_config, "byo-sshcfg-proxy", "echo", "via-proxy")
        assert (out.returncode, out.stdout) == (0, "via-proxy\n"), out.stderr
        assert len(used.read_text().splitlines()) == before + 1  # through the proxy
    finally:
        cluster.down()


def test_the_entry_goes_through_the_clusters_jump_host(sshd, user_ssh_config):
    jump = testing.start_sshd(sshd["user"], fresh_home=False)
    try:
        (jump.dir / "authorized_keys").write_text(Path(sshd["key"] + ".pub").read_text())
        creds = {"ssh_user": sshd["user"], "ssh_private_key": sshd["key"],
                 "ssh_port": sshd["port"], "ssh_proxy_jump": f"{jump.user}@127.0.0.1:{jump.port}"}
        cluster = rh.cluster(name="byo-sshcfg-jump", ips=["127.0.0.1"], ssh_creds=creds,
                             server_port=free_port())
        try:
            cluster.up()
            accepted = (jump.dir / "sshd.log").read_text().count("Accepted publickey")
            out = _ssh(user_ssh_config, "byo-sshcfg-jump", "echo", "via-jump")
            assert (out.returncode, out.stdout) == (0, "via-jump\n"), out.stderr
            assert (jump.dir / "sshd.log").read_text().count("Accepted publickey") == accepted + 1
        finally:
            cluster.down()
    finally:
        jump.stop()


def test_a_functions_ssh_and_notebook_are_its_clusters(node):
    f = rh.function(userfns.add).to(node)
    assert f.ssh("test -d ~/.rh/venv && exit 3") == 3
    with pytest.raises(rh.ConfigError, match="JupyterLab is not installed on rhbyo@127.0.0.1"):
        f.notebook()
