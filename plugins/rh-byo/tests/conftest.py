"""A real OpenSSH server on 127.0.0.1 for the byo tests.

``rh_byo.testing.start_sshd`` makes a test user (``rhbyo``, key login only), keys in a temp
folder, and a private ``sshd``; the fixture stops exactly that sshd (by PID) at the end. The
node's rh home is the test user's ``~/.rh``, emptied at the start of the session. Needs root
(to run sshd and add the user), as CI and the README's test command have.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from rh_byo import testing

from rh_core.testing import private_home

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "userpkg"))
USER = "rhbyo"


@pytest.fixture(scope="session", autouse=True)
def rh_home(tmp_path_factory):
    with private_home(tmp_path_factory.mktemp("rh-home")) as home:
        yield home


@pytest.fixture(scope="session", autouse=True)
def keyring_file(tmp_path_factory):
    """Secrets saved by the tests go to a keyring file of their own (keyrings.alt's file
    keyring, as on a headless machine), never the user's keyring."""
    data = tmp_path_factory.mktemp("xdg-data")
    saved = {k: os.environ.get(k) for k in ("XDG_DATA_HOME", "PYTHON_KEYRING_BACKEND")}
    os.environ["XDG_DATA_HOME"] = str(data)
    os.environ["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    yield data / "python_keyring"
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def sshd():
    lacking = testing.missing()
    if lacking:
        pytest.fail(f"the byo tests need {lacking} (bash scripts/test installs it)", pytrace=False)
    server = testing.start_sshd(USER)
    yield {"host": server.host, "port": server.port, "user": server.user, "key": server.key,
           "dir": server.dir, "user_home": server.user_home, "pid": server.proc.pid}
    server.stop()


@pytest.fixture
def creds(sshd):
    return {"ssh_user": sshd["user"], "ssh_private_key": sshd["key"], "ssh_port": sshd["port"]}
