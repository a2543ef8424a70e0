"""Fixtures for rh-aws-sagemaker: a private rh home and AWS configuration, moto's server, the
SageMaker stand-in and the fake ``aws`` executable (no AWS here).

- ``moto``: moto's server (``moto[server]``) on 127.0.0.1, started once per session and
  stopped by its PID. The session's AWS config file (``AWS_CONFIG_FILE``, never the user's)
  points every service of the ``default`` profile at it (``endpoint_url``), so boto3 talks to
  it over HTTP: request building, signing, retries and error parsing run for real.
- ``standin``: ``tests/standin.py``, a SageMaker API whose training jobs run their entry point
  on this machine (see its docstring); the profile ``standin`` sends SageMaker's requests to
  it and everything else (S3, IAM, STS, CloudWatch Logs) to moto.
- ``fake_aws``: a folder put first on PATH holding an ``aws`` script (``tests/fake_aws.py``)
  and a ``session-manager-plugin``; the ``aws_ssm`` connection runs them as it would run the
  real ones.

Tests against real AWS are in ``test_real_aws.py``: opt-in, run only with
``RH_SAGEMAKER_REAL_TESTS=1`` and credentials; they say in the summary when they did not run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rh_aws_sagemaker.provider import SageMakerProvider

from rh_core.testing import private_home

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "tests" / "userpkg"))
sys.path.insert(0, str(HERE))
ROLE = "SageMakerRole"
ROLE_ARN = f"arn:aws:iam::123456789012:role/{ROLE}"
TRUST = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": '
         '{"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]}')

#: The AWS settings of the environment the session started in (the opt-in real-AWS tests use
#: them; every other test gets the session's own files).
AWS_NAMES = ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE", "AWS_ENDPOINT_URL",
             "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
             "AWS_DEFAULT_REGION", "AWS_REGION")
REAL_AWS_ENV = {k: os.environ.get(k) for k in AWS_NAMES}

# Waiting for a job polls DescribeTrainingJob; the stand-in moves within a second.
SageMakerProvider.poll = 0.2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop(proc)
                pytest.fail(f"{what} did not start:\n{log.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    """Stop exactly ``proc`` (by its PID)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session", autouse=True)
def rh_home(tmp_path_factory):
    with private_home(tmp_path_factory.mktemp("rh-home")) as home:
        yield home


@pytest.fixture(scope="session", autouse=True)
def aws_files(tmp_path_factory):
    """The session's own AWS config and credentials files (filled in by ``moto`` and
    ``standin``); the user's ~/.aws is never read."""
    folder = tmp_path_factory.mktemp("aws")
    config, creds = folder / "config", folder / "credentials"
    config.write_text("[default]\nregion = us-east-1\n")
    creds.write_text("[default]\naws_access_key_id = testing\naws_secret_access_key = "
                     "testing\n[standin]\naws_access_key_id = testing\n"
                     "aws_secret_access_key = testing\n")
    saved = {k: os.environ.pop(k, None) for k in AWS_NAMES}
    os.environ["AWS_CONFIG_FILE"] = str(config)
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(creds)
    yield {"config": config, "credentials": creds}
    for k, v in saved.items():
        os.environ.pop(k, None)
        if v is not None:
            os.environ[k] = v


@pytest.fixture(scope="session")
def moto(aws_files, tmp_path_factory):
    """moto's server; the ``default`` profile's endpoint. Yields its URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                                 "127.0.0.1", "-p", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    wait_port(port, proc, "moto's server", log)
    url = f"http://127.0.0.1:{port}"
    aws_files["config"].write_text(f"[default]\nregion = us-east-1\nendpoint_url = {url}\n")
    import boto3

    boto3.client("iam", endpoint_url=url, region_name="us-east-1").create_role(
        RoleName=ROLE, AssumeRolePolicyDocument=TRUST)
    yield url
    stop(proc)


@pytest.fixture(scope="session")
def standin(moto, aws_files, tmp_path_factory):
    """The SageMaker stand-in: ``{"dir", "url"}``; the profile ``standin`` reaches it."""
    folder = tmp_path_factory.mktemp("standin")
    port = free_port()
    log = folder / "standin.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(HERE / "standin.py"), "--dir", str(folder),
                                 "--port", str(port), "--moto", moto], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    wait_port(port, proc, "the SageMaker stand-in", log)
    url = f"http://127.0.0.1:{port}"
    with open(aws_files["config"], "a") as f:
        f.write(f"[profile standin]\nregion = us-east-1\nendpoint_url = {moto}\n"
                f"services = standin\n[services standin]\nsagemaker =\n  endpoint_url = {url}\n")
    yield {"dir": folder, "url": url}
    stop(proc)


def write_fake_tools(folder: Path, ssm_dir: Path, version: str | None = None,
                     plugin: bool = True) -> Path:
    """``aws`` (and, with ``plugin``, ``session-manager-plugin``) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    env = f"RH_FAKE_SSM_DIR={ssm_dir} "
    if version:
        env += f"RH_FAKE_AWS_VERSION='{version}' "
    (folder / "aws").write_text(f"#!/bin/sh\n{env}exec {sys.executable} {HERE / 'fake_aws.py'} "
                                f"\"$@\"\n")
    (folder / "aws").chmod(0o755)
    if plugin:
        (folder / "session-manager-plugin").write_text("#!/bin/sh\nexit 0\n")
        (folder / "session-manager-plugin").chmod(0o755)
    return folder


@pytest.fixture(scope="session")
def fake_aws(standin, tmp_path_factory):
    """The fake ``aws`` and ``session-manager-plugin`` first on PATH for the session."""
    folder = write_fake_tools(tmp_path_factory.mktemp("bin"), standin["dir"])
    saved = os.environ["PATH"]
    os.environ["PATH"] = f"{folder}{os.pathsep}{saved}"
    yield folder
    os.environ["PATH"] = saved


@pytest.fixture(scope="session")
def sm(standin, fake_aws):
    """The cluster ``sm-test`` on the stand-in, brought up by the first test that calls it and
    stopped (StopTrainingJob) at the end of the session."""
    import rh_core as rh

    cluster = rh.sagemaker_cluster(name="sm-test", role=ROLE, profile="standin",
                                   autostop_mins=None)
    yield cluster
    cluster.down()
