"""A real OpenSSH server on 127.0.0.1 for the byo tests.

``rh_byo.testing.start_sshd`` makes a test user (``rhbyo``, key login only), keys in a temp
folder, and a private ``sshd``; the ``sshd`` fixture starts it once per session and stops
exactly that sshd (by PID) at the end. The node's rh home is the test user's ``~/.rh``, emptied
at the start of the session; ``node`` is the cluster on it that most tests share.

Needs root (to run sshd and add the users) and the programs of ``rh_byo.testing.SSHD_TOOLS``
(the several-node tests also ``ip`` and ``hostname``). A test whose fixture lacks one fails,
naming the program and the apt-get command that installs it; none is skipped.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from rh_byo import netns, testing
from rh_byo.ssh import free_port

import rh_core as rh
from rh_core.testing import private_home

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "userpkg"))
USER = "rhbyo"


def _need(what: str | None, tests: str) -> None:
    if what:
        pytest.fail(f"{tests} need {what} (bash scripts/test installs the packages when run as "
                    f"root)", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def rh_home(tmp_path_factory):
    with private_home(tmp_path_factory.mktemp("rh-home")) as home:
        yield home


@pytest.fixture(scope="session", autouse=True)
def user_ssh_config(tmp_path_factory):
    """The ssh config file bring-up adds its Include line to: one of the session's
    (``RH_SSH_CONFIG``), never the ``~/.ssh/config`` of the machine running the tests."""
    path = tmp_path_factory.mktemp("user-ssh") / "config"
    saved = os.environ.get("RH_SSH_CONFIG")
    os.environ["RH_SSH_CONFIG"] = str(path)
    yield path
    if saved is None:
        os.environ.pop("RH_SSH_CONFIG", None)
    else:
        os.environ["RH_SSH_CONFIG"] = saved


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
def ssh_tools():
    """Fails the test, saying what to install, when a program sshd tests run is missing."""
    _need(testing.missing(), "the byo tests")


@pytest.fixture(scope="session")
def netns_tools(ssh_tools):
    """The same for the several-node tests, which also make network namespaces."""
    _need(netns.missing(), "the several-node byo tests")


@pytest.fixture(scope="session")
def sshd(ssh_tools):
    server = testing.start_sshd(USER)
    yield {"host": server.host, "port": server.port, "user": server.user, "key": server.key,
           "dir": server.dir, "user_home": server.user_home, "pid": server.proc.pid}
    server.stop()


@pytest.fixture
def creds(sshd):
    return {"ssh_user": sshd["user"], "ssh_private_key": sshd["key"], "ssh_port": sshd["port"]}


@pytest.fixture(scope="session")
def node(sshd):
    """The cluster ``byo-test`` on the session's sshd, brought up by the first test that
    calls it and down at the end of the session. Its server has a port of its own: the clusters
    of other test users, up meanwhile, take the default one."""
    creds = {"ssh_user": sshd["user"], "ssh_private_key": sshd["key"], "ssh_port": sshd["port"]}
    cluster = rh.cluster(name="byo-test", ips=["127.0.0.1"], ssh_creds=creds,
                         server_port=free_port())
    yield cluster
    cluster.down()


@pytest.fixture
def own_cluster(sshd):
    """Clusters of the test's own on the session's sshd, for tests that stop or restart a
    server: ``own_cluster(name, **fields)`` gives each its own server port; each is brought
    down at the end of the test."""
    made = []

    def make(name: str, **fields):
        creds = {"ssh_user": sshd["user"], "ssh_private_key": sshd["key"],
                 "ssh_port": sshd["port"]}
        cluster = rh.cluster(name=name, ips=["127.0.0.1"], ssh_creds=creds,
                             server_port=free_port(), **fields)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.down()

