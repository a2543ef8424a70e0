"""A stand-in for the SageMaker API whose training jobs run on this machine.

No SageMaker can run here, and moto's training jobs are ``Completed`` as soon as they are made
and run nothing. This small Starlette app (on Hypercorn, plain HTTP on 127.0.0.1) answers the
real boto3 client (reached through ``AWS_ENDPOINT_URL_SAGEMAKER``) in SageMaker's JSON
protocol, for the operations rh uses:

- ``CreateTrainingJob``: the job is ``InProgress``/``Starting``; then, as SageMaker does, its
  input channels are downloaded from S3 (moto's server, through boto3) into a folder of the
  job (``Downloading``), and its ContainerEntrypoint is run on this machine with the job's
  Environment (``Training``), with ``/opt/ml/input/data`` and ``/opt/ml/output`` moved into
  that folder (``RH_SM_INPUT``, ``RH_SM_OUTPUT``, ``RH_NODE_HOME``) and the server on a free
  port instead of 32300 (written to ``<dir>/jobs/<job>/port`` for the fake ``aws``). Its output
  lines go to CloudWatch Logs (moto) as ``/aws/sagemaker/TrainingJobs`` ``<job>/algo-1-<time>``.
  Exit code 0 makes it ``Completed``; another ``Failed`` with the FailureReason of
  ``/opt/ml/output/failure`` (or the exit code).
- Several instances (``InstanceCount`` N): the entry point runs N times, once per host
  ``algo-1..N``, each with its own resource config (``RH_SM_RESOURCES``: ``current_host``,
  ``hosts``), its own ``/opt/ml/output`` and its own output stream ``<job>/algo-K-<time>``. Each
  instance runs in a network namespace of its own on a bridge of the job, with its own address
  (``RH_SM_ADDRESSES`` resolves ``algo-K`` to it, as SageMaker's DNS does), and in a mount
  namespace where its own home folder is mounted over one path (``tests/standin_hosts.py``);
  the fake ``aws`` reaches algo-1's server inside its namespace (``<dir>/jobs/<job>/netns``).
  An instance that fails makes the job ``Failed`` (the others get SIGTERM), with each failing
  instance's ``failure`` in the FailureReason. When every entry point has exited, what is
  still running in the namespaces is written to ``left.json``, then stopped, and the
  namespaces and the bridge are deleted. ``RH_SM_HEAD_GONE_SECONDS`` is 2 (the workers end 2 s
  after the head's Ray, not 20). A test may add environment variables to a job's instances in
  ``<dir>/knobs/<job>.json`` (``{"*" or "algo-K": {NAME: VALUE}}``), read when the job runs.
- ``DescribeTrainingJob``, ``ListTrainingJobs`` (NameContains, StatusEquals), ``StopTrainingJob``
  (``Stopping``: SIGTERM to every instance's entry point, then ``Stopped`` when all exited),
  ``AddTags``, ``ListTags``.

Not implemented: images (the entry point runs with this machine's Python), VPCs, spot, warm
pools, the SSM agent (the test's fake ``aws`` forwards the port). Several instances need root
(network namespaces).
Run: ``python standin.py --dir DIR --port P --moto URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from hypercorn.asyncio import serve
from hypercorn.config import Config
from standin_hosts import Network
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ACCOUNT = "123456789012"
REGION = "us-east-1"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Job:
    def __init__(self, req: dict, folder: Path):
        self.req = req
        self.name = req["TrainingJobName"]
        self.arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{self.name.lower()}"
        self.tags = list(req.get("Tags", []))
        self.status, self.secondary = "InProgress", "Starting"
        self.transitions: list[dict] = []
        self.failure: str | None = None
        self.created = time.time()
        self.folder = folder
        #: The entry point's process on each instance, algo-1 first.
        self.procs: list[subprocess.Popen] = []
        self.net: Network | None = None
        self.stopping = False
        self.move("Starting", "Launching requested ML instances")

    def move(self, secondary: str, message: str, status: str | None = None) -> None:
        now = time.time()
        if self.transitions:
            self.transitions[-1]["EndTime"] = now
        self.transitions.append({"Status": secondary, "StartTime": now,
                                 "StatusMessage": message})
        self.secondary = secondary
        if status:
            self.status = status

    def describe(self) -> dict:
        out = {"TrainingJobName": self.name, "TrainingJobArn": self.arn,
               "ModelArtifacts": {"S3ModelArtifacts": ""},
               "TrainingJobStatus": self.status, "SecondaryStatus": self.secondary,
               "StoppingCondition": self.req["StoppingCondition"],
               "CreationTime": self.created, "RoleArn": self.req["RoleArn"],
               "AlgorithmSpecification": self.req["AlgorithmSpecification"],
               "ResourceConfig": self.req["ResourceConfig"],
               "SecondaryStatusTransitions": self.transitions,
               "EnableManagedSpotTraining": self.req.get("EnableManagedSpotTraining", False)}
        if self.failure:
            out["FailureReason"] = self.failure
        return out


class Standin:
    def __init__(self, folder: Path, moto: str):
        self.folder, self.moto = folder, moto
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()

    def boto(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.moto, region_name=REGION)

    def run(self, job: Job) -> None:
        """What SageMaker does with a new job, on this machine."""
        try:
            self._run(job)
        except Exception as e:  # noqa: BLE001 - becomes the job's FailureReason
            self.signal(job, signal.SIGKILL)
            if job.net is not None:
                job.net.stop()
            job.failure = f"stand-in: {type(e).__name__}: {e}"
            job.move("Failed", job.failure, "Failed")

    def _run(self, job: Job) -> None:
        folder = job.folder
        data = folder / "input" / "data"
        time.sleep(0.5)  # finding and starting an instance
        job.move("Downloading", "Downloading input data")
        s3 = self.boto("s3")
        for channel in job.req.get("InputDataConfig", []):
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            bucket, _, prefix = uri[len("s3://"):].partition("/")
            dest = data / channel["ChannelName"]
            dest.mkdir(parents=True, exist_ok=True)
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                    Prefix=prefix):
                for obj in page.get("Contents", []):
                    rel = obj["Key"][len(prefix):]
                    if rel:
                        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                        s3.download_file(bucket, obj["Key"], str(dest / rel))
        if job.stopping:
            job.move("Stopped", "Training job stopped", "Stopped")
            return
        count = job.req["ResourceConfig"]["InstanceCount"]
        hosts = [f"algo-{k}" for k in range(1, count + 1)]
        base = {**os.environ, **job.req.get("Environment", {}), "RH_SM_INPUT": str(data)}
        entry = list(job.req["AlgorithmSpecification"]["ContainerEntrypoint"])
        # The container's python3 is this machine's Python; the program's path is moved.
        entry = [sys.executable if entry[0] == "python3" else entry[0]] + [
            a.replace("/opt/ml/input/data", str(data)) for a in entry[1:]]
        knobs_file = self.folder / "knobs" / f"{job.name}.json"
        knobs = json.loads(knobs_file.read_text()) if knobs_file.exists() else {}
        if count > 1:
            job.net = Network(count)
            (folder / "netns").write_text(job.net.namespaces[0])
            (folder / "home").mkdir()  # where each instance's own home is mounted
            base.update(RH_SM_ADDRESSES=json.dumps(dict(zip(hosts, job.net.addresses, strict=True))),
                        RH_SM_HEAD_GONE_SECONDS="2", HOME=str(folder / "home"),
                        RH_NODE_HOME=str(folder / "home" / "rh"))
        port = free_port()
        for k, host in enumerate(hosts):
            mine = folder / host if count > 1 else folder
            (mine / "home").mkdir(parents=True, exist_ok=True)
            (mine / "resourceconfig.json").write_text(json.dumps(
                {"current_host": host, "hosts": hosts, "network_interface_name": "eth0"}))
            env = {**base, "RH_SERVER_PORT": str(port), "RH_SM_OUTPUT": str(mine / "output"),
                   "RH_SM_RESOURCES": str(mine / "resourceconfig.json"),
                   **knobs.get("*", {}), **knobs.get(host, {})}
            kw = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "cwd": mine / "home"}
            if count > 1:
                env["RH_SM_RAY_TMP"] = job.net.ray_tmps[k]
                proc = job.net.spawn(k, entry, env, str(mine / "home"), str(folder / "home"),
                                     **kw)
            else:
                env.update(RH_NODE_HOME=str(folder / "rh"), HOME=str(folder / "home"))
                proc = subprocess.Popen(entry, env=env, start_new_session=True, **kw)
            (mine / "pid").write_text(str(proc.pid))
            job.procs.append(proc)
        (folder / "port").write_text(str(port))
        job.move("Training", "Training image download completed. Training in progress.")
        pumps = [threading.Thread(target=self.pump, args=(job, host, proc,
                                                          (folder / host if count > 1 else
                                                           folder) / "node.log"), daemon=True)
                 for host, proc in zip(hosts, job.procs, strict=True)]
        for t in pumps:
            t.start()
        while any(p.poll() is None for p in job.procs):
            # An instance that fails ends the job: SageMaker stops the others.
            if not job.stopping and any(p.poll() not in (None, 0) for p in job.procs):
                self.signal(job, signal.SIGTERM)
            time.sleep(0.2)
        for t in pumps:
            t.join(10)
        if job.net is not None:
            (folder / "left.json").write_text(json.dumps(job.net.left()))
            job.net.stop()
        codes = [p.returncode for p in job.procs]
        if job.stopping:
            job.move("Stopped", "Training job stopped", "Stopped")
        elif not any(codes):
            job.move("Completed", "Training job completed", "Completed")
        else:
            reasons = []
            for host, code in zip(hosts, codes, strict=True):
                failure = (folder / host if count > 1 else folder) / "output" / "failure"
                said = failure.read_text() if failure.exists() else \
                    f"the entry point exited with code {code}"
                if code:
                    reasons.append(f"{host}: {said}" if count > 1 else said)
            job.failure = f"AlgorithmError: {'; '.join(reasons)}"
            job.move("Failed", job.failure, "Failed")

    def pump(self, job: Job, host: str, proc: subprocess.Popen, keep_path: Path) -> None:
        """An instance's output into its file and its CloudWatch stream."""
        logs = self.boto("logs")
        stream = f"{job.name}/{host}-{int(job.created)}"
        try:
            logs.create_log_group(logGroupName=LOG_GROUP)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        with open(keep_path, "wb") as keep:
            for line in proc.stdout:
                keep.write(line)
                keep.flush()
                logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=[
                    {"timestamp": int(time.time() * 1000),
                     "message": line.decode(errors="replace").rstrip("\n")}])

    def signal(self, job: Job, sig: int) -> None:
        for proc in job.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass

    def stop(self, job: Job) -> None:
        job.stopping = True
        job.move("Stopping", "Stopping the training job", "Stopping")
        self.signal(job, signal.SIGTERM)

    def shutdown(self) -> None:
        for job in self.jobs.values():
            self.signal(job, signal.SIGKILL)
            for proc in job.procs:
                proc.wait()
            if job.net is not None:
                job.net.stop()


def error(kind: str, message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"__type": kind, "message": message}, status_code=status,
                        media_type="application/x-amz-json-1.1")


def build(standin: Standin) -> Starlette:
    async def endpoint(request: Request):
        action = request.headers.get("x-amz-target", "").partition(".")[2]
        body = json.loads(await request.body() or b"{}")
        handler = ACTIONS.get(action)
        if handler is None:
            return error("UnknownOperationException", f"the stand-in has no {action}")
        return await asyncio.to_thread(handler, standin, body)

    return Starlette(routes=[Route("/", endpoint, methods=["POST"])])


def find(standin: Standin, name: str) -> Job | None:
    return standin.jobs.get(name)


def create(standin: Standin, body: dict):
    name = body["TrainingJobName"]
    with standin.lock:
        if name in standin.jobs:
            return error("ResourceInUse", f"Training job names must be unique within an AWS "
                         f"account and region, and a training job with this name already "
                         f"exists ({standin.jobs[name].arn})")
        folder = standin.folder / "jobs" / name
        folder.mkdir(parents=True)
        job = standin.jobs[name] = Job(body, folder)
    threading.Thread(target=standin.run, args=(job,), daemon=True).start()
    return JSONResponse({"TrainingJobArn": job.arn})


def describe(standin: Standin, body: dict):
    job = find(standin, body["TrainingJobName"])
    if job is None:
        return error("ValidationException", "Requested resource not found.")
    return JSONResponse(job.describe())


def stop(standin: Standin, body: dict):
    job = find(standin, body["TrainingJobName"])
    if job is None or job.status != "InProgress":
        return error("ValidationException", f"The request was rejected because the training "
                     f"job is in status {job.status if job else 'unknown'}.")
    standin.stop(job)
    return JSONResponse({})


def list_jobs(standin: Standin, body: dict):
    out = []
    for job in sorted(standin.jobs.values(), key=lambda j: -j.created):
        if body.get("NameContains", "") not in job.name:
            continue
        if body.get("StatusEquals") and job.status != body["StatusEquals"]:
            continue
        out.append({"TrainingJobName": job.name, "TrainingJobArn": job.arn,
                    "CreationTime": job.created, "TrainingJobStatus": job.status})
    return JSONResponse({"TrainingJobSummaries": out})


def by_arn(standin: Standin, arn: str) -> Job | None:
    return next((j for j in standin.jobs.values() if j.arn == arn), None)


def add_tags(standin: Standin, body: dict):
    job = by_arn(standin, body["ResourceArn"])
    if job is None:
        return error("ValidationException", "Requested resource not found.")
    job.tags = [t for t in job.tags if t["Key"] not in {n["Key"] for n in body["Tags"]}]
    job.tags += body["Tags"]
    return JSONResponse({"Tags": job.tags})


def list_tags(standin: Standin, body: dict):
    job = by_arn(standin, body["ResourceArn"])
    if job is None:
        return error("ValidationException", "Requested resource not found.")
    return JSONResponse({"Tags": job.tags})


ACTIONS = {"CreateTrainingJob": create, "DescribeTrainingJob": describe,
           "StopTrainingJob": stop, "ListTrainingJobs": list_jobs, "AddTags": add_tags,
           "ListTags": list_tags}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--moto", required=True)
    args = p.parse_args()
    standin = Standin(Path(args.dir), args.moto)
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.accesslog = None
    stopped = asyncio.Event()

    async def run():
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stopped.set)
        await serve(build(standin), config, shutdown_trigger=stopped.wait)

    try:
        asyncio.run(run())
    finally:
        standin.shutdown()


if __name__ == "__main__":
    main()
