"""SageMaker clusters of several instances. Stood in: the SageMaker API (``standin.py``: each
instance's entry point, rh's node program, runs on this machine in a network namespace of its
own with its own address, and its own home folder mounted over one path; ``algo-K`` resolves
through ``RH_SM_ADDRESSES`` instead of SageMaker's DNS), S3, IAM, STS and CloudWatch Logs (moto's
server), the AWS CLI with the SSM agent (the fake ``aws``, which forwards to algo-1's server in
its namespace). The node program, Ray's head and worker nodes, the rh server driving maps over
Ray, the forwarding of code roots from the head to the other instance, the SSM session's
process and the calls run for real. Needs root (network namespaces) and Ray."""

from __future__ import annotations

import json
import os
import time

import pytest
import smfns
import userfns
from conftest import ROLE

import rh_core as rh
from rh_core.errors import ConnectionFailedError

if os.geteuid() != 0:
    pytest.skip("several instances run in network namespaces, which need root",
                allow_module_level=True)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def entry_pids(standin, job: str) -> dict[str, int]:
    folder = standin["dir"] / "jobs" / job
    return {h: int((folder / h / "pid").read_text()) for h in ("algo-1", "algo-2")}


def wait_status(cluster, wanted: set[str], seconds: float) -> dict:
    """The job's description once its status is one of ``wanted`` (or time is up); only the
    job's: ``c.status()`` asks the server too, which is work for its idle rule."""
    deadline = time.monotonic() + seconds
    while True:
        job = cluster.provider.describe()
        if job["status"] in wanted or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


@pytest.fixture(scope="module")
def two(standin, fake_aws):
    """A cluster of two instances, shared by the tests of this module until one stops it."""
    c = rh.sagemaker_cluster(name="sm-two", role=ROLE, profile="standin", instance_count=2,
                             autostop_mins=None)
    yield c
    c.down()


def test_two_instances_come_up_and_a_call_runs_on_the_head(two, standin, capfd):
    f = rh.function(userfns.node_address).to(two)
    shown = capfd.readouterr().err
    for step in ("creating training job sm-two (2 x ml.m5.xlarge)",
                 "job sm-two: Training (the container runs)", "syncing userpkg into the job",
                 "forwarding userpkg to the job's other 1 instance(s)"):
        assert step in shown, shown
    assert f().startswith("10.234.")  # algo-1's address on the stand-in's bridge
    job = two.status()["sagemaker"]
    assert (job["status"], job["instance_count"]) == ("InProgress", 2)
    assert two.provider.nodes() == ["algo-1", "algo-2"]


def test_map_spreads_over_both_instances(two):
    """Each item says the address of the instance it ran on: both appear. userfns comes from
    the code root synced into the head and forwarded to algo-2."""
    f = rh.function(userfns.node_address).to(two)
    head = f()
    places = f.map(range(40))
    assert len(places) == 40 and head in places and len(set(places)) == 2, places
    assert rh.function(smfns.double).to(two).map([1, 2, 3]) == [2, 4, 6]


def test_logs_have_every_instance(two):
    logs = two.logs()
    assert "rh-node: all 2 instances joined Ray" in logs, logs
    assert "rh-node: algo-2 joined Ray" in logs, logs
    assert "rh-node: code root userpkg" in logs or "forwarded to 1 instances" in logs, logs


def test_down_stops_every_instance(two, standin):
    pids = entry_pids(standin, "sm-two")
    assert all(alive(p) for p in pids.values())
    two.down()
    assert two.status()["sagemaker"]["status"] == "Stopped"
    assert not any(alive(p) for p in pids.values())
    left = json.loads((standin["dir"] / "jobs" / "sm-two" / "left.json").read_text())
    assert left == {"algo-1": [], "algo-2": []}, left  # Ray's processes too
    logs = two.logs()
    assert "rh-node: the job is stopping: stopping the rh server" in logs
    assert "rh-node: the job is stopping\n" in logs  # algo-2


def test_autostop_on_the_head_ends_the_job_and_the_other_instance(standin, fake_aws):
    """The head's server stops itself when idle (autostop 0.1 min); the head stops its Ray and
    exits 0; algo-2 sees the head's Ray port gone for 2 s (the stand-in's
    RH_SM_HEAD_GONE_SECONDS) and exits 0: the job is Completed."""
    c = rh.sagemaker_cluster(name="sm-idle2", role=ROLE, profile="standin", instance_count=2,
                             autostop_mins=0.1)
    try:
        assert rh.function(userfns.add).to(c)(2, 3) == 5
        pids = entry_pids(standin, "sm-idle2")
        job = wait_status(c, {"Completed", "Failed", "Stopped"}, 90)
        assert job["status"] == "Completed", job
        assert not any(alive(p) for p in pids.values())
        left = json.loads((standin["dir"] / "jobs" / "sm-idle2" / "left.json").read_text())
        assert left == {"algo-1": [], "algo-2": []}, left
        assert "the Ray head on algo-1 is gone: algo-2 stops" in c.logs()
    finally:
        c.down()


def test_an_instance_that_cannot_reach_the_head_fails_the_job(standin, fake_aws):
    """algo-2 is given a wrong address for algo-1 (a knob of the stand-in), and 10 s to join:
    it fails, the stand-in stops algo-1 as SageMaker does, and bring-up fails with the job's
    FailureReason naming algo-2."""
    knobs = standin["dir"] / "knobs"
    knobs.mkdir(exist_ok=True)
    (knobs / "sm-lonely.json").write_text(json.dumps({
        "*": {"RH_SM_JOIN_SECONDS": "10"},
        "algo-2": {"RH_SM_ADDRESSES": json.dumps({"algo-1": "10.234.255.77",
                                                  "algo-2": "0.0.0.0"})}}))
    c = rh.sagemaker_cluster(name="sm-lonely", role=ROLE, profile="standin", instance_count=2,
                             autostop_mins=None)
    try:
        with pytest.raises(ConnectionFailedError) as e:
            rh.function(userfns.add).to(c)(1, 2)
        said = str(e.value)
        assert "Failed" in said and "algo-2" in said, said
        job = c.status()["sagemaker"]
        assert job["status"] == "Failed"
        assert "algo-2: rh: algo-2 could not reach the Ray head on algo-1 (10.234.255.77:6379)" \
            in job["failure_reason"], job
    finally:
        c.down()
