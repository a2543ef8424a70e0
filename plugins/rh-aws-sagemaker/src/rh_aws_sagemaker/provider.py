"""The ``sagemaker`` compute provider: a training job whose container installs rh's wheels and
runs the rh server (reached through the ``aws_ssm`` connection); or, with ``estimator=``, a
training job of the user's own that rh starts, watches and stops."""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
import sysconfig
import time
from pathlib import Path

from rh_aws_sagemaker import jobs, request
from rh_aws_sagemaker.aws import AWS
from rh_aws_sagemaker.cluster import SageMakerCluster, sagemaker_cluster
from rh_aws_sagemaker.errors import AWSError, JobFailedError, NameInUseError
from rh_aws_sagemaker.roles import resolve_role
from rh_core import user_config, wheelhouse
from rh_core.errors import ConfigError, RhError
from rh_core.paths import rh_home, write_private
from rh_core.plugin.interfaces import ComputeProvider, Endpoint
from rh_core.progress import Steps
from rh_core.transport import tokens

#: How long a job may take from its creation to running its container (instances can take
#: minutes to be found and started; a large image minutes to be pulled).
LAUNCH_TIMEOUT = 1800
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
PREFIX = "rh"


def now_stamp() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S")


class SageMakerProvider(ComputeProvider):
    """One training job per bring-up; the head instance (``algo-1``) runs the server clients
    use."""

    name = "sagemaker"
    cluster_class = SageMakerCluster
    factory = staticmethod(sagemaker_cluster)
    #: Seconds between two DescribeTrainingJob calls while waiting.
    poll = 2.0

    def __init__(self, cluster: SageMakerCluster):
        super().__init__(cluster)
        self._aws: AWS | None = None

    @property
    def aws(self) -> AWS:
        if self._aws is None:
            region = self.cluster.region or user_config.value("default_region")
            self._aws = AWS(self.cluster.profile, region)
        return self._aws

    @property
    def extras(self) -> str:
        """The core's extras the job installs: Ray too on several instances, where ``.map``
        spreads over them (``rh_server/ray_map.py``)."""
        return "server,ray" if self.cluster.instance_count > 1 else "server"

    def token(self) -> str:
        return tokens.cluster_token(f"sagemaker:{self.aws.region}:{self.cluster.short_name}")

    # ------------------------------------------------------------------ the job's record

    def _record_path(self) -> Path:
        return rh_home() / "sagemaker" / f"{self.aws.region}-{self.cluster.short_name}.json"

    @property
    def job_name(self) -> str | None:
        """The cluster's last job: the cluster's field, else this machine's record of it."""
        if self.cluster.job_name:
            return self.cluster.job_name
        try:
            name = json.loads(self._record_path().read_text())["job_name"]
        except (OSError, ValueError, KeyError):
            return None
        self.cluster.job_name = name
        return name

    def _remember(self, job_name: str) -> None:
        self.cluster.job_name = job_name
        path = self._record_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps({"job_name": job_name}))

    def _describe(self, job_name: str) -> dict | None:
        """DescribeTrainingJob, or None when there is no such job."""
        try:
            return self.aws.call(self.aws.sagemaker.describe_training_job,
                                 TrainingJobName=job_name, what=f"job {job_name}")
        except AWSError as e:
            said = str(e).lower()
            if e.code == "ValidationException" and ("not found" in said or
                                                    "could not find" in said):
                return None
            raise

    def _is_rhs(self, job: dict) -> bool:
        tags = self.aws.call(self.aws.sagemaker.list_tags, ResourceArn=job["TrainingJobArn"])
        return {"Key": request.TAG_CLUSTER, "Value": self.cluster.short_name} in tags["Tags"]

    def job_status(self) -> str | None:
        job = self._describe(self.job_name) if self.job_name else None
        return job["TrainingJobStatus"] if job else None

    # ------------------------------------------------------------------ bring-up

    def up(self) -> Endpoint:
        """Find the cluster's job running, or start one; wait until its container runs."""
        c = self.cluster
        if c.dedicated:
            return jobs.start(self)
        steps = Steps(c.short_name)
        job = self._describe(self.job_name) if self.job_name else None
        if job is None or job["TrainingJobStatus"] not in ("InProgress",):
            job_name = self.launch(steps)
        else:
            job_name = job["TrainingJobName"]
        self._wait(job_name, steps)
        return Endpoint("127.0.0.1", c.server_port, self.token())

    def _new_job_name(self) -> str:
        """The cluster's name for its first job; ``<name>-<time>`` after that (SageMaker never
        takes a job name twice). A job of that name that is not rh's is an error."""
        name = self.cluster.short_name
        job = self._describe(name)
        if job is None:
            return name
        if not self._is_rhs(job):
            raise NameInUseError(
                f"a SageMaker training job named {name!r} exists ({job['TrainingJobStatus']}) "
                f"and is not an rh cluster's (it has no tag {request.TAG_CLUSTER}={name}): "
                f"give the cluster another name")
        return f"{name}-{now_stamp()}"

    def _check_python(self, image: str) -> str:
        """The Python the wheels are built for; an error when the default image cannot run
        them (another image's Python is checked on the node)."""
        here = f"{sys.version_info[0]}.{sys.version_info[1]}"
        if not sysconfig.get_platform().startswith("linux"):
            raise ConfigError(f"rh builds the job's wheels on this machine, which is "
                              f"{sysconfig.get_platform()}, but SageMaker runs Linux: run rh "
                              f"from Linux (e.g. a SageMaker notebook or an EC2 instance)")
        if self.cluster.image_uri is None and here != request.DEFAULT_IMAGE_PYTHON:
            raise ConfigError(f"the default SageMaker image has Python "
                              f"{request.DEFAULT_IMAGE_PYTHON}, but rh runs here on Python "
                              f"{here} (the job's wheels are built for it): run rh with Python "
                              f"{request.DEFAULT_IMAGE_PYTHON}, or give image_uri= an image "
                              f"with Python {here}")
        return here

    def launch(self, steps: Steps) -> str:
        """Create the cluster's training job (role, image, wheels and its files in S3); its
        name. Does not wait for it."""
        c, aws = self.cluster, self.aws
        with steps.step("finding the job's IAM role") as s:
            role_arn = resolve_role(aws, c.role, c.profile)
            s["note"] = role_arn
        image = c.image_uri or request.default_image(aws.region, c.instance_type)
        python = self._check_python(image)
        job_name = self._new_job_name()
        bucket = self._bucket()
        with steps.step("building the wheelhouse (cached)") as s:
            folder, key = wheelhouse.build(log=lambda _: None, extras=self.extras)
            s["note"] = f"{len(list(folder.glob('*.whl')))} wheels"
        wheels_prefix = f"{PREFIX}/wheelhouse/{key}/"
        with steps.step(f"uploading the wheels to s3://{bucket}/{wheels_prefix} (once per "
                        f"version)"):
            self._upload_wheels(bucket, wheels_prefix, folder)
        job_prefix = f"{PREFIX}/jobs/{job_name}/"
        s3 = aws.client("s3")
        here = Path(__file__).parent
        install = wheelhouse.install_script(".", self.extras, key).encode()
        for name, body in (("node.py", (here / "node.py").read_bytes()),
                           ("nodecode.py", (here / "nodecode.py").read_bytes()),
                           ("install.sh", install), ("token", self.token().encode())):
            aws.call(s3.put_object, Bucket=bucket, Key=job_prefix + name, Body=body,
                     ServerSideEncryption="AES256", what=f"s3://{bucket}/{job_prefix}{name}")
        spec = request.JobSpec(cluster=c, job_name=job_name, role_arn=role_arn, image=image,
                               wheels_uri=f"s3://{bucket}/{wheels_prefix}",
                               job_uri=f"s3://{bucket}/{job_prefix}",
                               output_uri=f"s3://{bucket}/{PREFIX}/output/",
                               extras=self.extras, python=python)
        with steps.step(f"creating training job {job_name} ({c.instance_count} x "
                        f"{c.instance_type}{', spot' if c.use_spot else ''})"):
            aws.call(aws.sagemaker.create_training_job, **request.training_job_request(spec),
                     what=f"job {job_name}, {c.instance_type}")
        self._remember(job_name)
        return job_name

    def _bucket(self) -> str:
        """SageMaker's default bucket of the account and region (the SDK's, too), made when
        missing."""
        aws = self.aws
        bucket = f"sagemaker-{aws.region}-{aws.account()}"
        s3 = aws.client("s3")
        try:
            aws.call(s3.head_bucket, Bucket=bucket)
        except AWSError:
            args = {} if aws.region == "us-east-1" else {
                "CreateBucketConfiguration": {"LocationConstraint": aws.region}}
            aws.call(s3.create_bucket, Bucket=bucket, what=f"bucket {bucket}", **args)
        return bucket

    def _upload_wheels(self, bucket: str, prefix: str, folder: Path) -> None:
        aws, s3 = self.aws, self.aws.client("s3")
        marker = prefix + ".complete"
        try:
            aws.call(s3.head_object, Bucket=bucket, Key=marker)
            return
        except AWSError:
            pass
        for whl in sorted(folder.glob("*.whl")):
            aws.call(s3.upload_file, str(whl), bucket, prefix + whl.name, what=whl.name)
        aws.call(s3.put_object, Bucket=bucket, Key=marker, Body=b"")

    def _wait(self, job_name: str, steps: Steps) -> dict:
        """Wait until the job's container runs (``InProgress``, secondary status ``Training``),
        showing each secondary status with how long it lasted."""
        deadline = time.monotonic() + LAUNCH_TIMEOUT
        shown = None
        with contextlib.ExitStack() as current:
            while True:
                job = self._describe(job_name)
                if job is None:
                    raise JobFailedError(f"the training job {job_name} is gone")
                status, secondary = job["TrainingJobStatus"], job.get("SecondaryStatus")
                if status in ("Failed", "Stopped", "Stopping", "Completed"):
                    raise JobFailedError(self._ended(job))
                if secondary != shown:
                    current.close()
                    if status == "InProgress" and secondary == "Training":
                        with steps.step(f"job {job_name}: Training (the container runs)"):
                            return job
                    message = _last_message(job)
                    current.enter_context(steps.step(f"job {job_name}: {secondary}" +
                                                     (f": {message}" if message else "")))
                    shown = secondary
                if time.monotonic() > deadline:
                    raise JobFailedError(f"the training job {job_name} did not start its "
                                         f"container in {LAUNCH_TIMEOUT // 60} minutes (it is "
                                         f"{status}, {secondary}); stop it with c.down()")
                time.sleep(self.poll)

    def _ended(self, job: dict) -> str:
        name, status = job["TrainingJobName"], job["TrainingJobStatus"]
        reason = job.get("FailureReason")
        if status == "Failed":
            return (f"the training job {name} failed while starting: {reason or 'no reason given'}"
                    f". Its log: c.logs(), or CloudWatch {LOG_GROUP} {name}/algo-1")
        secondary = job.get("SecondaryStatus")
        if secondary in ("Interrupted", "MaxWaitTimeExceeded") or (reason and
                                                                  "spot" in reason.lower()):
            return (f"the training job {name} was interrupted (spot capacity reclaimed): "
                    f"{reason or _last_message(job)}; bring the cluster up again with c.up()")
        return (f"the training job {name} is {status} ({secondary}"
                f"{': ' + reason if reason else ''}): bring the cluster up again with c.up()")

    # ------------------------------------------------------------------ running cluster

    def endpoint(self) -> Endpoint | None:
        """The server's endpoint when the job's container runs; None otherwise."""
        if not self.job_name:
            return None
        job = self._describe(self.job_name)
        if job is None or job["TrainingJobStatus"] != "InProgress" or \
                job.get("SecondaryStatus") != "Training":
            return None
        return Endpoint("127.0.0.1", self.cluster.server_port, self.token())

    def down(self) -> None:
        """StopTrainingJob, then wait until the job has stopped. Idempotent."""
        name = self.job_name
        if not name:
            return
        job = self._describe(name)
        if job is None or job["TrainingJobStatus"] not in ("InProgress", "Stopping"):
            return
        steps = Steps(self.cluster.short_name)
        with steps.step(f"stopping training job {name}") as s:
            if job["TrainingJobStatus"] == "InProgress":
                try:
                    self.aws.call(self.aws.sagemaker.stop_training_job, TrainingJobName=name,
                                  what=f"job {name}")
                except AWSError as e:
                    if e.code != "ValidationException":  # it ended meanwhile
                        raise
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                job = self._describe(name)
                if job is None or job["TrainingJobStatus"] not in ("InProgress", "Stopping"):
                    break
                time.sleep(self.poll)
            s["note"] = job["TrainingJobStatus"] if job else "gone"

    def describe(self) -> dict:
        """The job: name, status, secondary status, failure reason, instance, times."""
        name = self.job_name
        job = self._describe(name) if name else None
        if job is None:
            return {"job_name": name, "status": None}
        resources = job.get("ResourceConfig", {})
        return {"job_name": name, "status": job["TrainingJobStatus"],
                "secondary_status": job.get("SecondaryStatus"),
                "failure_reason": job.get("FailureReason"),
                "message": _last_message(job),
                "instance_type": resources.get("InstanceType"),
                "instance_count": resources.get("InstanceCount"),
                "spot": bool(job.get("EnableManagedSpotTraining")),
                "created": str(job.get("CreationTime")),
                "billable_seconds": job.get("BillableTimeInSeconds")}

    def server_log(self) -> str:
        """The job's log in CloudWatch: every instance's stream, ``algo-1`` first."""
        name = self.job_name
        if not name:
            return ""
        logs = self.aws.client("logs")
        try:
            streams = self.aws.call(logs.describe_log_streams, logGroupName=LOG_GROUP,
                                    logStreamNamePrefix=f"{name}/")["logStreams"]
        except AWSError as e:
            if e.code == "ResourceNotFoundException":
                return ""
            raise
        out = []
        for stream in sorted(streams, key=lambda s: s["logStreamName"]):
            kwargs = {"logGroupName": LOG_GROUP, "logStreamName": stream["logStreamName"],
                      "startFromHead": True}
            while True:
                page = self.aws.call(logs.get_log_events, **kwargs)
                out += [e["message"].rstrip("\n") for e in page["events"]]
                if not page["events"] or page.get("nextForwardToken") == kwargs.get("nextToken"):
                    break
                kwargs["nextToken"] = page["nextForwardToken"]
        return "\n".join(out) + ("\n" if out else "")

    def restart_server(self) -> Endpoint:
        """A new server process in the running job (the instances, their files and Ray stay):
        the server stops when asked (``POST /restart``) and the job's node program starts it
        again. A job that does not run is brought up, as ``up()`` does."""
        if self.cluster.dedicated or self.endpoint() is None:
            return super().restart_server() if self.cluster.dedicated else self.up()
        client = self.cluster.client()
        old = client.restart()["pid"]
        steps = Steps(self.cluster.short_name)
        with steps.step("restarting the rh server in the job") as s:
            deadline = time.monotonic() + 120
            while True:
                try:
                    pid = client.health()["pid"]
                    if pid != old:
                        s["note"] = f"pid {old} -> {pid}"
                        break
                except RhError:
                    pass  # stopping, or not answering yet
                if time.monotonic() > deadline:
                    raise JobFailedError(f"the rh server in job {self.job_name} did not come "
                                         f"back within 120 s of its restart; see c.logs()")
                time.sleep(0.2)
        return Endpoint("127.0.0.1", self.cluster.server_port, self.token())

    def nodes(self) -> list[str]:
        """The job's instances, as SSM names them (``algo-1`` is the head)."""
        return [f"algo-{i}" for i in range(1, self.cluster.instance_count + 1)]

    def sync_code(self, local_root: str) -> str:
        """Send the code root to the head instance through the server's ``/folder/tar``."""
        # rh_core's code tree and folder client load only when code is first synced.
        from rh_aws_sagemaker.codesync import sync_code

        return sync_code(self.cluster, local_root)


def _last_message(job: dict) -> str:
    transitions = job.get("SecondaryStatusTransitions") or []
    return transitions[-1].get("StatusMessage", "") if transitions else ""
