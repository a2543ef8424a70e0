"""Password logins and passphrase-protected keys through paramiko, against a private sshd that
lets a second user (``rhbyopw``) log in with a password. The password must never be written
anywhere: saved configs, the node, messages, the cluster's repr."""

from __future__ import annotations

import json
import os
import pickle
import secrets
import shutil
import subprocess
import sys
import time
import traceback

import pytest
import userfns
from rh_byo import testing

import rh_core as rh

PASSWORD = f"Pw-{secrets.token_hex(6)}"
PW_USER = "rhbyopw"


@pytest.fixture(scope="module")
def pw_sshd(sshd):
    server = testing.start_sshd(sshd["user"], fresh_home=False, password_user=PW_USER,
                                password=PASSWORD)
    shutil.rmtree(f"/home/{PW_USER}/.rh", ignore_errors=True)
    (server.dir / "authorized_keys").write_text(open(sshd["key"] + ".pub").read())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pw_cluster(pw_sshd):
    creds = {"ssh_user": PW_USER, "ssh_password": PASSWORD, "ssh_port": pw_sshd.port}
    cluster = rh.cluster(name="byo-pw", ips=["127.0.0.1"], ssh_creds=creds,
                         server_connection_type="paramiko")
    yield cluster
    cluster.down()


def _files_holding(folder, text: str) -> list[str]:
    found = []
    for dirpath, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(dirpath, n)
            try:
                if text.encode() in open(p, "rb").read():
                    found.append(p)
            except OSError:
                pass
    return found


def test_password_login_brings_up_and_calls(pw_cluster, capfd):
    f = rh.function(userfns.concat).to(pw_cluster)
    assert f("run", "house") == "runhouse"
    pid = rh.function(userfns.pid).to(pw_cluster)()
    owner = open(f"/proc/{pid}/status").read().split("Uid:")[1].split()[0]
    assert int(owner) == __import__("pwd").getpwnam(PW_USER).pw_uid
    assert pw_cluster.client().info.base_url.startswith("http://127.0.0.1:")  # a tunnel
    shown = capfd.readouterr()
    assert "rh byo-pw: connecting to rhbyopw@127.0.0.1" in shown.err
    # The password is nowhere a user or the node can see it.
    assert PASSWORD not in shown.out + shown.err
    assert PASSWORD not in repr(pw_cluster) and "'ssh_password': '***'" in repr(pw_cluster)
    assert PASSWORD not in json.dumps(pw_cluster.config())
    assert PASSWORD not in json.dumps(pw_cluster.status())
    assert PASSWORD not in json.dumps(f.config())
    assert PASSWORD.encode() not in pickle.dumps(f)  # a function (and its cluster) pickled
    assert _files_holding(f"/home/{PW_USER}/.rh", PASSWORD) == []


def test_wrong_password_is_refused_without_showing_it(pw_sshd):
    wrong = f"Wrong-{secrets.token_hex(6)}"
    c = rh.cluster(name="byo-pw-wrong", ips=["127.0.0.1"], server_connection_type="paramiko",
                   ssh_creds={"ssh_user": PW_USER, "ssh_password": wrong,
                              "ssh_port": pw_sshd.port})
    with pytest.raises(rh.ConnectionFailedError) as err:
        c.up_if_not()
    assert str(err.value) == (f"SSH login to rhbyopw@127.0.0.1 (port {pw_sshd.port}) was "
                              f"refused: check ssh_user and ssh_password")
    shown = "".join(traceback.format_exception(err.value))  # what a user's traceback prints
    assert wrong not in shown and "During handling" not in shown


def test_saved_config_holds_no_password_and_loads_back(pw_cluster, rh_home, keyring_file):
    rh.function(userfns.add).to(pw_cluster)
    pw_cluster.save()
    saved = json.loads((rh_home / "rns" / "byo-pw.json").read_text())
    assert saved["ssh_creds"] == {"ssh_user": PW_USER, "ssh_port": pw_cluster.ssh_creds["ssh_port"],
                                  "ssh_password_secret": "keyring:byo/byo-pw/ssh_password"}
    assert _files_holding(rh_home, PASSWORD) == []
    assert rh.secret_backend("keyring").get("byo/byo-pw/ssh_password") == PASSWORD
    assert keyring_file.is_dir()  # the headless keyring of the tests (keyrings.alt's file)
    # Loaded back by name, here and in another process (the command line).
    again = rh.cluster("byo-pw")
    assert PASSWORD not in repr(again)
    assert rh.function(userfns.add).to(again)(1, 2) == 3
    out = subprocess.run([sys.executable, "-m", "rh_core.cli", "status", "byo-pw"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["cluster"] == "byo-pw"
    assert PASSWORD not in out.stdout + out.stderr


def test_saving_without_keyring_says_how_to_install_it(pw_sshd):
    code = f"""
import sys
sys.modules["keyring"] = None  # as if the package were not installed
import rh_core as rh
c = rh.cluster(name="byo-nokeyring", ips=["127.0.0.1"], server_connection_type="paramiko",
               ssh_creds={{"ssh_user": "{PW_USER}", "ssh_password": "{PASSWORD}"}})
c.save()
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0
    assert "pip install 'rh-core[secrets]'" in out.stderr
    assert PASSWORD not in out.stderr


def test_dropped_transport_is_reopened_on_the_next_call(pw_cluster, pw_sshd):
    f = rh.function(userfns.add).to(pw_cluster)
    assert f(1, 1) == 2
    node = pw_cluster.provider.node
    before = node.transport()
    # Drop the connection for real: end the sshd processes serving it (children of the sshd
    # this test started).
    children = subprocess.run(["ps", "--ppid", str(pw_sshd.proc.pid), "-o", "pid="],
                              capture_output=True, text=True).stdout.split()
    assert children
    for pid in children:
        os.kill(int(pid), 15)
    deadline = time.monotonic() + 10
    while before.is_active() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not before.is_active()
    assert f(2, 2) == 4
    assert node.transport() is not before


def test_ssh_command_over_paramiko(pw_cluster, capfd):
    assert pw_cluster.ssh("echo from-paramiko; echo on-stderr >&2") == 0
    shown = capfd.readouterr()
    assert "from-paramiko" in shown.out and "on-stderr" in shown.err


def test_changed_host_key_is_refused_over_paramiko(pw_sshd, rh_home, tmp_path):
    known = rh_home / "ssh" / "known_hosts"
    saved = known.read_text()
    try:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(tmp_path / "other")], check=True)
        fake = (tmp_path / "other.pub").read_text().split()[:2]
        known.write_text(f"[127.0.0.1]:{pw_sshd.port} {' '.join(fake)}\n")
        c = rh.cluster(name="byo-pw-mitm", ips=["127.0.0.1"], server_connection_type="paramiko",
                       ssh_creds={"ssh_user": PW_USER, "ssh_password": PASSWORD,
                                  "ssh_port": pw_sshd.port})
        with pytest.raises(rh.ConnectionFailedError,
                           match=f"the host key of rhbyopw@127.0.0.1 \\(port {pw_sshd.port}\\) "
                                 f"is not the one recorded in {known}"):
            c.run("true")
    finally:
        known.write_text(saved)


def test_unreachable_over_paramiko(pw_sshd):
    c = rh.cluster(name="byo-pw-nowhere", ips=["127.0.0.1"], server_connection_type="paramiko",
                   ssh_creds={"ssh_user": PW_USER, "ssh_password": PASSWORD, "ssh_port": 1})
    with pytest.raises(rh.ConnectionFailedError, match="cannot reach rhbyopw@127.0.0.1 \\(port 1\\)"):
        c.up_if_not()


@pytest.fixture
def passphrase_key(sshd, tmp_path):
    """A key with a passphrase, authorized for the test user (for as long as the test runs)."""
    phrase = f"Pp-{secrets.token_hex(6)}"
    key = tmp_path / "id_pp"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", phrase, "-f", str(key)],
                   check=True)
    auth = sshd["dir"] / "authorized_keys"
    saved = auth.read_text()
    auth.write_text(saved + (tmp_path / "id_pp.pub").read_text())
    yield str(key), phrase
    auth.write_text(saved)


def test_key_with_passphrase(sshd, passphrase_key, rh_home):
    key, phrase = passphrase_key
    creds = {"ssh_user": sshd["user"], "ssh_private_key": key, "ssh_port": sshd["port"]}
    c = rh.cluster(name="byo-pp", ips=["127.0.0.1"],
                   ssh_creds={**creds, "ssh_private_key_passphrase": phrase})
    assert c.run("echo with-passphrase") == [(0, "with-passphrase\n", "")]
    c.save()
    assert phrase not in (rh_home / "rns" / "byo-pp.json").read_text()
    assert rh.cluster("byo-pp").run("echo loaded") == [(0, "loaded\n", "")]
    c.provider.node.close()
    c.delete_configs()
    # Without it: the OpenSSH client (default) and paramiko both say what is missing.
    for connection in ("ssh", "paramiko"):
        bare = rh.cluster(name=f"byo-pp-{connection}", ips=["127.0.0.1"], ssh_creds=creds,
                          server_connection_type=connection)
        with pytest.raises(rh.ConnectionFailedError,
                           match=f"the key {key} is protected by a passphrase: give it as "
                                 f"ssh_creds\\['ssh_private_key_passphrase'\\]"):
            bare.run("true")
