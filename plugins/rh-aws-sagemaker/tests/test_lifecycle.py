"""Stopping a cluster, and a job that ends under a connected client. Stood in: the SageMaker
API (``standin.py``: the job's entry point, rh's node program, runs on this machine), S3, IAM,
STS and CloudWatch Logs (moto's server), the AWS CLI (the fake ``aws``); the node program, the
rh server, the SSM session's process and the calls run for real."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import boto3
import pytest
import userfns
from conftest import ROLE

import rh_core as rh
from rh_core.errors import ConnectionFailedError


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_down_stops_the_job_its_server_and_the_session(standin, fake_aws):
    c = rh.sagemaker_cluster(name="sm-down", role=ROLE, profile="standin", autostop_mins=None)
    assert rh.function(userfns.add).to(c)(1, 1) == 2
    port = int((standin["dir"] / "jobs" / "sm-down" / "port").read_text())
    session = [json.loads(line) for line in (standin["dir"] / "sessions.log").read_text()
               .splitlines() if "sm-down_algo-1" in line][-1]
    assert answers(port) and alive(session["pid"])
    c.down()
    assert c.status()["sagemaker"]["status"] == "Stopped"
    assert not answers(port)  # the node program stopped the server on SIGTERM
    assert not alive(session["pid"])  # the session's process group was killed
    assert "rh-node: the job is stopping: stopping the rh server" in c.logs()
    c.down()  # again: nothing to stop


def test_a_job_stopped_under_a_client_says_so(standin, fake_aws):
    """The job is stopped from elsewhere (the console, a spot reclaim): the next call fails
    saying the job's status, not only that a connection broke."""
    c = rh.sagemaker_cluster(name="sm-gone", role=ROLE, profile="standin", autostop_mins=None)
    add = rh.function(userfns.add).to(c)
    assert add(2, 2) == 4
    boto3.Session(profile_name="standin").client("sagemaker").stop_training_job(
        TrainingJobName="sm-gone")
    with pytest.raises(ConnectionFailedError, match="training job sm-gone is (Stopping|Stopped)"):
        for _ in range(50):
            add(1, 1)
    c.down()


def test_autostop_ends_the_job_and_up_starts_a_new_one(standin, fake_aws):
    """The server's idle rule: after autostop_mins without work the server stops itself, the
    node program exits 0 and the job ends Completed (the instance is released). c.up() then
    starts a new job under a new name."""
    c = rh.sagemaker_cluster(name="sm-auto", role=ROLE, profile="standin", autostop_mins=0.05)
    assert rh.function(userfns.add).to(c)(1, 2) == 3
    deadline = time.monotonic() + 60
    # The job's description only: c.status() asks the server too, which is work for it.
    while c.provider.describe()["status"] == "InProgress" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert c.status()["sagemaker"]["status"] == "Completed"
    log = c.logs()
    assert "(autostop after 0.05 min): stopping" in log and \
        "rh-node: the rh server exited with code 0" in log
    c.up()
    assert c.job_name.startswith("sm-auto-") and c.status()["sagemaker"]["status"] == "InProgress"
    assert rh.function(userfns.add).to(c)(2, 2) == 4
    c.down()


def test_the_node_program_writes_why_it_cannot_start(tmp_path):
    """The node program alone, with an image whose Python differs from the wheels': it exits
    1 and leaves its reason where SageMaker reads the FailureReason from."""
    env = {**os.environ, "RH_PYTHON": "2.7", "RH_SM_INPUT": str(tmp_path / "in"),
           "RH_SM_OUTPUT": str(tmp_path / "out"), "RH_NODE_HOME": str(tmp_path / "home")}
    import rh_aws_sagemaker.node as program

    proc = subprocess.run([sys.executable, program.__file__], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failure = (tmp_path / "out" / "failure").read_text()
    here = "%d.%d" % sys.version_info[:2]
    assert failure == (f"rh: the image has Python {here}, but rh's wheels were built for Python "
                       f"2.7: give the cluster an image_uri with Python 2.7, or run rh with "
                       f"Python {here}")
