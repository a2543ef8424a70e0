"""Fixtures of rh-skypilot's tests.

No cloud is reachable here. The tests stop at one of two boundaries, each test's docstring says
which:

- SkyPilot's own objects, offline: ``sky.Resources`` and ``sky.Task`` built for real. SkyPilot
  checks an instance type of a named cloud against its catalog, which it downloads when it has
  none: the session's HOME holds a small hand-written AWS catalog (``CATALOG``), fresh, so
  SkyPilot reads it and fetches nothing.
- The SDK function boundary: ``RH_SKYPILOT_SDK=sky_standin`` (``tests/sky_standin.py``) stands
  in for ``launch``, ``status``, ``stop``, ``down``, ``autostop``, ``get`` and
  ``stream_and_get``. The clusters it "launches" are a real OpenSSH sshd on 127.0.0.1 (rh-byo's
  ``start_sshd``, as rh-byo's tests use it), so rh's bring-up, the server, calls, logs and down
  run for real over SSH.

HOME is a folder of the session (set before SkyPilot is imported, since SkyPilot fixes its
paths then), so nothing touches the ~/.sky of the machine. Needs root and the programs of
``rh_byo.testing.SSHD_TOOLS``; a test whose fixture lacks one fails, naming the apt-get command.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
from rh_byo import testing

from rh_core.testing import private_home

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "userpkg"))
USER = "rhsky"

#: A small AWS catalog in SkyPilot's format (v8): enough for the instance types of the tests.
CATALOG = """\
InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,AvailabilityZone,Arch
m5.xlarge,,,4.0,16.0,,0.192,0.08,us-east-1,use1-az1,x86_64
m5.xlarge,,,4.0,16.0,,0.192,0.08,us-east-1,use1-az2,x86_64
g5.xlarge,A10G,1.0,4.0,16.0,"{'Gpus': [{'Name': 'A10G', 'Count': 1}]}",1.006,0.4,us-east-1,use1-az1,x86_64
"""

_HOME = Path(tempfile.mkdtemp(prefix="rh-sky-home-"))
_SAVED_HOME = os.environ.get("HOME")
os.environ["HOME"] = str(_HOME)
(_HOME / ".sky" / "catalogs" / "v8" / "aws").mkdir(parents=True)
(_HOME / ".sky" / "catalogs" / "v8" / "aws" / "vms.csv").write_text(CATALOG)
os.environ["RH_SKY_STANDIN"] = str(_HOME)
os.environ["RH_SKYPILOT_SDK"] = "sky_standin"


def pytest_sessionfinish(session, exitstatus):
    if _SAVED_HOME is not None:
        os.environ["HOME"] = _SAVED_HOME
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def rh_home(tmp_path_factory):
    with private_home(tmp_path_factory.mktemp("rh-home")) as home:
        yield home


@pytest.fixture(scope="session", autouse=True)
def user_ssh_config(tmp_path_factory):
    """The ssh config file bring-up adds its Include line to: one of the session's."""
    path = tmp_path_factory.mktemp("user-ssh") / "config"
    os.environ["RH_SSH_CONFIG"] = str(path)
    yield path
    os.environ.pop("RH_SSH_CONFIG", None)


@pytest.fixture(scope="session")
def sshd():
    """A real sshd on 127.0.0.1 for the test user ``rhsky`` (key login), started once per
    session and stopped by its PID."""
    what = testing.missing()
    if what:
        pytest.fail(f"the rh-skypilot tests need {what}", pytrace=False)
    server = testing.start_sshd(USER)
    yield server
    server.stop()


@pytest.fixture
def standin(sshd):
    """The SDK stand-in's state, emptied, with the session's sshd as the one host clusters
    get; ``standin.calls(fn)`` lists what rh called."""
    import sky_standin

    path = _HOME / "state.json"
    path.unlink(missing_ok=True)
    sky_standin.configure([{"host": sshd.host, "port": sshd.port, "user": sshd.user,
                            "key": sshd.key}])
    yield sky_standin
    # A cluster a test left launched: its job ended as `down` would.
    state = sky_standin.load()
    for cluster in state["clusters"].values():
        sky_standin._end_job(cluster)
    path.unlink(missing_ok=True)


def wait_for(predicate, timeout: float = 30, every: float = 0.2):
    """``predicate()``'s first true value within ``timeout`` seconds (else AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not true within {timeout} s: {predicate}")
