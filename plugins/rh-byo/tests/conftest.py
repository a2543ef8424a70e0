"""A real OpenSSH server on 127.0.0.1 for the byo tests.

The fixture makes a test user (``rhbyo``, a normal account with a locked password: key login
only), a host key and a client key in a temp folder, starts a private ``sshd`` with its own
config, and stops exactly that sshd (by PID) at the end. The node's rh home is the test user's
``~/.rh``, emptied at the start of the session. Needs root (to run sshd and add the user),
as CI and the README's test command have.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "userpkg"))
USER = "rhbyo"


def _need(cond: bool, what: str) -> None:
    if not cond:
        pytest.fail(f"the byo tests need {what} (bash scripts/test installs it)", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def rh_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("rh-home")
    old = os.environ.get("RH_HOME")
    os.environ["RH_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("RH_HOME", None)
    else:
        os.environ["RH_HOME"] = old


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    _need(os.geteuid() == 0, "root")
    _need(Path("/usr/sbin/sshd").exists(), "openssh-server")
    _need(shutil.which("rsync") is not None, "rsync")
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", USER], check=True)
    subprocess.run(["usermod", "-p", "*", USER], check=True)  # locked password, keys allowed
    user_home = Path(pwd.getpwnam(USER).pw_dir)
    shutil.rmtree(user_home / ".rh", ignore_errors=True)
    # Not under pytest's temp root (mode 0700): sshd reads authorized_keys as the test user.
    d = Path(tempfile.mkdtemp(prefix="rh-sshd-"))
    d.chmod(0o755)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "host_key")],
                   check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id_ed25519")],
                   check=True)
    auth = d / "authorized_keys"
    auth.write_text((d / "id_ed25519.pub").read_text())
    auth.chmod(0o644)
    port = _free_port()
    config = d / "sshd_config"
    config.write_text(f"""
Port {port}
ListenAddress 127.0.0.1
HostKey {d}/host_key
PidFile {d}/sshd.pid
AuthorizedKeysFile {auth}
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin no
AllowUsers {USER}
AllowTcpForwarding yes
Subsystem sftp internal-sftp
LogLevel VERBOSE
""")
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(config), "-E", str(d / "sshd.log")])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    info = {"host": "127.0.0.1", "port": port, "user": USER, "key": str(d / "id_ed25519"),
            "dir": d, "user_home": user_home, "pid": proc.pid}
    yield info
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def creds(sshd):
    return {"ssh_user": sshd["user"], "ssh_private_key": sshd["key"], "ssh_port": sshd["port"]}
