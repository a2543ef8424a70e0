"""Fixtures: a private rh home for the whole session and one real local cluster shared by tests.

Every server a fixture starts is stopped by the PID it recorded (``cluster.down()``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rh_core.testing import private_home

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE / "userpkg"))


@pytest.fixture(scope="session", autouse=True)
def rh_home(tmp_path_factory):
    with private_home(tmp_path_factory.mktemp("rh-home")) as home:
        yield home


@pytest.fixture(scope="session", autouse=True)
def private_keyring(tmp_path_factory):
    """The keyring is keyrings.alt's file backend, its file in a temporary folder for the session
    ($XDG_DATA_HOME): tests never touch the user's own keyring, and subprocesses (the rh
    command) use the same one."""
    data = tmp_path_factory.mktemp("xdg-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
        mp.setenv("XDG_DATA_HOME", str(data))
        yield data / "python_keyring" / "keyring_pass.cfg"


@pytest.fixture(scope="session")
def local(rh_home):
    """The local cluster, started once for the session and stopped by PID at its end."""
    import rh_core as rh

    cluster = rh.cluster("local").up_if_not()
    yield cluster
    cluster.down()


@pytest.fixture
def own_cluster(rh_home, request):
    """A separate local cluster for tests that restart, crash or stop its server."""
    import rh_core as rh

    name = "t-" + request.node.name.replace("[", "-").replace("]", "")[:40]
    cluster = rh.cluster(name=name, provider="local")
    yield cluster
    cluster.down()


def server_url(cluster) -> str:
    return cluster.client().info.base_url


@pytest.fixture(scope="session")
def secure(rh_home):
    """A local cluster with den_auth on, serving concat and add; stopped by PID at the end."""
    import userfns

    import rh_core as rh

    cluster = rh.cluster(name="secure", provider="local", den_auth=True)
    rh.function(userfns.concat).to(cluster)
    rh.function(userfns.add).to(cluster)
    yield cluster
    cluster.down()


@pytest.fixture(scope="session")
def public(rh_home):
    """A local cluster without den_auth (anonymous callers may read), serving add, concat, boom."""
    import userfns

    import rh_core as rh

    cluster = rh.cluster(name="public", provider="local")
    for fn in (userfns.add, userfns.concat, userfns.boom):
        rh.function(fn).to(cluster)
    yield cluster
    cluster.down()


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs in the test's folder (mounting needs root, as CI has); unmounted at the end."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a small tmpfs and needs root (CI runs as root)",
                    pytrace=False)
    disk = tmp_path / "small"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    yield disk
    subprocess.run(["umount", str(disk)], check=True)
