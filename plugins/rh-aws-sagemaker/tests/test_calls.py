"""The whole call path over the ``aws_ssm`` connection. Stood in: the SageMaker API (the
stand-in of ``standin.py``, whose job runs its entry point on this machine: rh's node program
installs the wheels rh uploaded to S3 and starts the real rh server), S3, IAM, STS and
CloudWatch Logs (moto's server, through the real boto3), and the AWS CLI with its
session-manager-plugin (the fake ``aws`` on PATH, which checks its argv and forwards the local
port). rh's bring-up, its process handling of the session, the server, the calls and the logs
run for real."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import smfns
import userfns

import rh_core as rh


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def sessions(standin, job: str | None = None) -> list[dict]:
    """The sessions the fake ``aws`` started (of ``job``'s head only, when given)."""
    path = standin["dir"] / "sessions.log"
    found = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [s for s in found if job is None or s["argv"][3] == f"sagemaker-training-job:{job}_algo-1"]


def test_bring_up_and_call_a_function(standin, fake_aws, capfd):
    """The first .to() creates the training job, shows its secondary statuses, opens the SSM
    session with exactly the argv the AWS CLI takes, and calls the function on the job."""
    c = rh.sagemaker_cluster(name="sm-first", role="SageMakerRole", profile="standin",
                             autostop_mins=None)
    try:
        f = rh.function(userfns.concat).to(c)
        assert f("run", "house") == "runhouse"
        shown = capfd.readouterr().err
        for step in ("finding the job's IAM role, arn:aws:iam::123456789012:role/SageMakerRole",
                     "uploading the wheels to s3://sagemaker-us-east-1-123456789012/rh/"
                     "wheelhouse/", "creating training job sm-first (1 x ml.m5.xlarge)",
                     "job sm-first: Starting: Launching requested ML instances",
                     "job sm-first: Training (the container runs)",
                     "syncing userpkg into the job"):
            assert step in shown, shown
        argv = sessions(standin, "sm-first")[0]["argv"]
        assert argv[:2] == ["ssm", "start-session"]
        assert argv[2:8] == ["--target", "sagemaker-training-job:sm-first_algo-1",
                             "--document-name", "AWS-StartPortForwardingSession", "--parameters",
                             f"portNumber=32300,localPortNumber={argv[7].rsplit('=', 1)[1]}"]
        assert argv[8:] == ["--region", "us-east-1", "--profile", "standin"]
        name, home = rh.function(smfns.where).to(c)()
        assert name == "sm-first" and home == str(standin["dir"] / "jobs" / "sm-first" / "rh")
    finally:
        c.down()


def test_a_module_keeps_its_state(sm):
    Counter = rh.module(smfns.Counter).to(sm)
    counter = Counter(10, name="sm_counter")
    assert counter.add(5) == 15
    assert counter.add() == 16


def test_stream_logs_and_a_large_numpy_array(sm, capfd):
    """Logs stream back while the call runs; a 32 MiB array goes both ways through the
    forwarded port."""
    chatter = rh.function(smfns.chatter).to(sm)
    assert chatter(3, stream_logs=True) == 3
    assert "job line 0\njob line 1\njob line 2\n" in capfd.readouterr().out
    array = np.arange(4 * 2**20, dtype=np.float64)
    doubled = rh.function(smfns.double).to(sm, env=["numpy"])(array)
    assert doubled.shape == array.shape and np.array_equal(doubled, array * 2)


def test_status_and_logs(sm, standin, rh_home):
    rh.function(userfns.add).to(sm)
    status = sm.status()
    job = status["sagemaker"]
    assert (job["job_name"], job["status"], job["secondary_status"], job["instance_type"]) == (
        "sm-test", "InProgress", "Training", "ml.m5.xlarge")
    assert "add" in json.dumps(status)  # the server's own part: what it serves
    log = sm.logs()  # from CloudWatch Logs
    assert "rh-node: rh installed in" in log
    assert "rh-node: rh server of sm-test answering on 127.0.0.1:" in log
    token = sm.provider.token()  # the owner token is in no log, config or command line
    ssm_log = (rh_home / "logs" / "ssm-sm-test.log").read_text()
    assert token not in log and token not in ssm_log and token not in json.dumps(sm.config())
    assert all(token not in " ".join(s["argv"]) for s in sessions(standin))


def test_the_session_comes_back_after_its_process_dies(sm, standin):
    """Killing the session's process (as a dropped SSM session ends it) starts a new one on
    the same local port; calls go on."""
    add = rh.function(userfns.add).to(sm)
    assert add(1, 2) == 3
    before = sessions(standin, "sm-test")
    os.killpg(before[-1]["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 30
    while len(sessions(standin, "sm-test")) == len(before) and time.monotonic() < deadline:
        time.sleep(0.05)
    again = sessions(standin, "sm-test")[-1]
    assert again["pid"] != before[-1]["pid"] and again["argv"] == before[-1]["argv"]
    assert add(2, 3) == 5
    # Whether the watcher's new session or, if the client found the port refused first, a new
    # connection's session carries the calls, exactly one session process is left running.
    live = [s["pid"] for s in sessions(standin, "sm-test") if alive(s["pid"])]
    assert len(live) == 1, live


def test_saved_and_loaded_by_name_finds_the_running_job(sm, capfd):
    sm.save()
    again = rh.cluster("sm-test")
    assert again.config() == sm.config() and again.job_name == "sm-test"
    capfd.readouterr()
    assert rh.function(userfns.add).to(again)(2, 40) == 42
    shown = capfd.readouterr().err
    assert "creating training job" not in shown, shown
    assert "syncing userpkg" not in shown, shown  # the code there is unchanged: not sent again
    again._forget_client()  # its own SSM session, killed here (the session's cluster keeps its own)


def test_restart_server_restarts_the_server_in_the_running_job(sm, capfd):
    """``c.restart_server()`` asks the server to stop (``POST /restart``) and rh's node program in
    the job starts it again: the same job, a new server process, the served names back."""
    add = rh.function(userfns.add).to(sm)
    assert add(1, 2) == 3
    job, before = sm.job_name, sm.client().health()["pid"]
    capfd.readouterr()
    sm.restart_server()
    shown = capfd.readouterr().err
    assert "restarting the rh server in the job" in shown and "creating training job" not in shown
    after = sm.client().health()["pid"]
    assert after != before and sm.job_name == job and not alive(before)
    assert add(2, 3) == 5
    assert "rh-node: the rh server stopped to be restarted (its owner asked)" in sm.logs()
