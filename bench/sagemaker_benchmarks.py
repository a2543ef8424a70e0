"""Benchmarks of a SageMaker cluster (rh-aws-sagemaker) on the loopback stand-in of its tests
(plugins/rh-aws-sagemaker/tests: moto's server for S3, IAM, STS and CloudWatch Logs, the
SageMaker stand-in whose job runs rh's node program and the real rh server here, the fake
``aws`` that forwards the port):

- rh's own part of bring-up: from the moment the job's container starts (the stand-in's
  ``Training`` transition, where SageMaker's part ends) to the first call answered on the
  client: the node program's install from the wheelhouse, the server's start, the SSM session,
  the function's registration and the call. The wheelhouse is built beforehand (as it is after a
  cluster's first bring-up);
- a trivial call through the ``aws_ssm`` stand-in against the same call through a byo node's
  SSH tunnel (a private sshd on 127.0.0.1, as rh-byo's tests start it), interleaved; when rh-byo
  or sshd is missing, against the same call on the local cluster, and the row says so.

Needs the rh-aws-sagemaker plugin and moto[server] installed (``pip install -e
'plugins/rh-aws-sagemaker[test]'``)."""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import (  # noqa: I001 - bench/ is on sys.path
    ARG,
    FIGURES,
    interleaved,
    stop_proc,
    summary,
)

TESTS = Path(__file__).resolve().parent.parent / "plugins" / "rh-aws-sagemaker" / "tests"
AWS_NAMES = ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE", "AWS_ENDPOINT_URL",
             "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
             "AWS_DEFAULT_REGION", "AWS_REGION")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(argv: list[str], port: int, log: Path, what: str, env: dict) -> subprocess.Popen:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL,
                                env={**{k: v for k, v in os.environ.items()
                                        if k not in AWS_NAMES}, **env})
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_proc(proc)
                raise RuntimeError(f"{what} did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.05)


def _aws_setup(folder: Path) -> tuple[list[subprocess.Popen], dict]:
    """moto's server, the SageMaker stand-in, the AWS files and the fake tools; the processes
    (to stop by PID) and the environment to set."""
    folder.mkdir()
    procs = []
    moto_port, standin_port = _free_port(), _free_port()
    moto = f"http://127.0.0.1:{moto_port}"
    standin_dir = folder / "standin"
    standin_dir.mkdir()
    (folder / "config").write_text(
        f"[default]\nregion = us-east-1\nendpoint_url = {moto}\n[profile standin]\n"
        f"region = us-east-1\nendpoint_url = {moto}\nservices = standin\n[services standin]\n"
        f"sagemaker =\n  endpoint_url = http://127.0.0.1:{standin_port}\n")
    (folder / "credentials").write_text(
        "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
        "[standin]\naws_access_key_id = testing\naws_secret_access_key = testing\n")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(f"#!/bin/sh\nRH_FAKE_SSM_DIR={standin_dir} exec "
                                 f"{sys.executable} {TESTS / 'fake_aws.py'} \"$@\"\n")
    (bin_dir / "session-manager-plugin").write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {"AWS_CONFIG_FILE": str(folder / "config"),
           "AWS_SHARED_CREDENTIALS_FILE": str(folder / "credentials"),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    procs.append(_start([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1",
                         "-p", str(moto_port)], moto_port, folder / "moto.log", "moto's server",
                        env))
    try:
        procs.append(_start([sys.executable, str(TESTS / "standin.py"), "--dir",
                             str(standin_dir), "--port", str(standin_port), "--moto", moto],
                            standin_port, folder / "standin.log", "the SageMaker stand-in", env))
    except BaseException:
        stop_proc(procs[0])
        raise
    import boto3

    boto3.client("iam", endpoint_url=moto, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_role(
        RoleName="SageMakerRole", AssumeRolePolicyDocument='{"Version": "2012-10-17", '
        '"Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},'
        ' "Action": "sts:AssumeRole"}]}')
    return procs, env


def bench_sagemaker(ctx: dict, calls: int) -> list[dict]:
    try:
        import moto  # noqa: F401 - only to say clearly when it is missing
        import rh_aws_sagemaker  # noqa: F401
    except ImportError:
        raise RuntimeError("the rh-aws-sagemaker plugin and moto[server] are not installed (pip "
                           "install -e 'plugins/rh-aws-sagemaker[test]'): no SageMaker "
                           "figures") from None
    import boto3
    from rh_aws_sagemaker.provider import SageMakerProvider

    import rh_core as rh
    from rh_core import wheelhouse

    wheelhouse.build(log=lambda _: None)  # rh's part is measured with the wheelhouse built
    saved = {k: os.environ.get(k) for k in (*AWS_NAMES, "PATH")}
    procs, env = _aws_setup(ctx["workdir"] / "sagemaker")
    for k in AWS_NAMES:
        os.environ.pop(k, None)
    os.environ.update(env)
    os.environ["RH_QUIET"] = "1"
    poll = SageMakerProvider.poll
    SageMakerProvider.poll = 0.05
    cluster = sshd = byo = None
    try:
        cluster = rh.sagemaker_cluster(name="bench-sm", role="SageMakerRole", profile="standin",
                                       autostop_mins=None)
        f = rh.function(ctx["trivial"]).to(cluster)
        if f(ARG) != ARG:
            raise AssertionError("trivial returned the wrong value over aws_ssm")
        answered = time.time()
        job = boto3.Session(profile_name="standin").client("sagemaker").describe_training_job(
            TrainingJobName="bench-sm")
        started = next(t["StartTime"] for t in job["SecondaryStatusTransitions"]
                       if t["Status"] == "Training").timestamp()
        bringup = answered - started
        log = cluster.logs()
        parts = {"install": float(re.search(r"rh installed in ([\d.]+) s", log).group(1)),
                 "server_start": float(re.search(r"answering on .* \(([\d.]+) s after its "
                                                 r"start\)", log).group(1))}
        parts["ssm_sync_register_call"] = bringup - parts["install"] - parts["server_start"]

        def via_ssm():
            if f(ARG) != ARG:
                raise AssertionError("trivial returned the wrong value over aws_ssm")

        baseline_name, other = _ssh_baseline(ctx)
        if other is None:
            local_f = ctx["f"]
            baseline_name = ("the same call on the local cluster (loopback HTTP; no byo figure: "
                             f"{baseline_name})")

            def other():
                if local_f(ARG) != ARG:
                    raise AssertionError("trivial returned the wrong value")
        else:
            sshd, byo = other.sshd, other.cluster
        t = interleaved({"ssm": via_ssm, "baseline": other}, calls)
    finally:
        SageMakerProvider.poll = poll
        os.environ.pop("RH_QUIET", None)
        try:
            if cluster is not None:
                cluster.down()
            if byo is not None:
                byo.down()
            if sshd is not None:
                sshd.stop()
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None)
                if v is not None:
                    os.environ[k] = v
            for proc in reversed(procs):  # the stand-in stops its jobs before it exits
                stop_proc(proc)
    return [
        {"key": "sm_bringup", "figure": FIGURES["sm_bringup"], "ours": bringup, "baseline": None,
         "unit": "s", "samples": {"ours": summary([bringup])}, "parts": parts},
        {"key": "sm_latency", "figure": FIGURES["sm_latency"],
         "ours": statistics.median(t["ssm"]), "baseline": statistics.median(t["baseline"]),
         "unit": "s", "baseline_name": baseline_name,
         "samples": {"ssm": summary(t["ssm"]), "baseline": summary(t["baseline"])}},
    ]


def _ssh_baseline(ctx: dict):
    """The trivial call on a byo node through its SSH tunnel: ``(name, callable)`` with the
    callable's ``sshd`` and ``cluster`` to stop; ``(why not, None)`` without rh-byo or sshd."""
    try:
        from rh_byo import testing
    except ImportError:
        return "rh-byo is not installed", None
    lacking = testing.missing()
    if lacking:
        return f"the SSH baseline needs {lacking}", None
    import rh_core as rh

    sshd = testing.start_sshd("rhbench")
    try:
        cluster = rh.cluster(name="bench-sm-byo", ips=["127.0.0.1"], ssh_creds=sshd.creds)
        f = rh.function(ctx["trivial"]).to(cluster)
    except BaseException:
        sshd.stop()
        raise

    def via_tunnel():
        if f(ARG) != ARG:
            raise AssertionError("trivial returned the wrong value through the SSH tunnel")

    via_tunnel.sshd, via_tunnel.cluster = sshd, cluster
    return "the same call on a byo node through its SSH tunnel (OpenSSH, 127.0.0.1)", via_tunnel
