"""The record of a SageMaker cluster, its checks, and ``rh.sagemaker_cluster``."""

from __future__ import annotations

import re
from typing import Any, ClassVar

import attrs

from rh_core.errors import ConfigError
from rh_core.resources.cluster import Cluster

#: The port the server listens on inside the training container (on its loopback).
SERVER_PORT = 32300
#: A training job name is at most 63 characters of letters, digits and '-'; rh adds a
#: ``-<14-digit time>`` suffix when the cluster's own name was used by an earlier job.
NAME_RE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
MAX_NAME = 48
INSTANCE_RE = re.compile(r"ml\.[a-z0-9-]+\.[a-z0-9-]+")


def _positive(inst, attr, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{attr.name} must be a whole number of 1 or more, got {value!r}")


def _minutes(inst, attr, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or not value > 0):
        raise ConfigError(f"{attr.name} is a number of minutes above 0 (or None: no autostop), "
                          f"got {value!r}")


def _instance_type(inst, attr, value):
    if value is not None and not (isinstance(value, str) and INSTANCE_RE.fullmatch(value)):
        raise ConfigError(f"instance_type={value!r} is not a SageMaker instance type: they look "
                          f"like 'ml.g5.xlarge' or 'ml.m5.large' (the 'ml.' prefix included)")


def _str_list(inst, attr, value):
    if value is not None and (not isinstance(value, list) or
                              not all(isinstance(v, str) and v for v in value)):
        raise ConfigError(f"{attr.name} must be a list of IDs (strings), got {value!r}")


def _str_list_converter(value):
    return [value] if isinstance(value, str) else value


@attrs.define(kw_only=True, slots=False)
class SageMakerCluster(Cluster):
    """A SageMaker training job running the rh server, reached through AWS Systems Manager;
    or, with ``estimator``, a training job of your own that rh starts, watches and stops."""

    subtype: ClassVar[str] = "sagemaker"

    server_connection_type: str = "aws_ssm"
    #: The instance type of the job (None with ``estimator``: the estimator's own).
    instance_type: str | None = attrs.field(default="ml.m5.xlarge", validator=_instance_type)
    #: The IAM role the job runs as: an ARN, or a role name (found with IAM). None: the
    #: ``role_arn`` of ``profile`` (or of ``$AWS_PROFILE``, else ``default``) in ~/.aws/config,
    #: else the role the caller's credentials are.
    role: str | None = None
    #: The AWS profile whose credentials and region rh uses (None: ``$AWS_PROFILE``, else the
    #: default chain).
    profile: str | None = None
    #: The container image of the job (None: a SageMaker PyTorch training image of the region).
    image_uri: str | None = None
    instance_count: int = attrs.field(default=1, validator=_positive)
    #: The job's EBS volume, in GB.
    volume_size: int = attrs.field(default=30, validator=_positive)
    #: Stop the job after this many minutes with no call running and none started (None:
    #: only ``max_runtime_hours`` ends it).
    autostop_mins: float | None = attrs.field(default=60, validator=_minutes)
    #: Managed spot training (cheaper; SageMaker may interrupt the job).
    use_spot: bool = False
    #: SageMaker stops the job after this long whatever happens (its MaxRuntimeInSeconds).
    max_runtime_hours: int = attrs.field(default=24, validator=_positive)
    #: The AWS region (None: ``default_region`` of rh's config, else the profile's, or
    #: ``$AWS_DEFAULT_REGION``).
    region: str | None = None
    #: A VPC for the job: both subnet IDs and security group IDs, or neither.
    subnets: list[str] | None = attrs.field(default=None, converter=_str_list_converter,
                                            validator=_str_list)
    security_groups: list[str] | None = attrs.field(default=None, converter=_str_list_converter,
                                                    validator=_str_list)
    #: The training job of the cluster's last bring-up (set by rh).
    job_name: str | None = None
    #: A ``sagemaker.train.ModelTrainer`` (or a v2-style estimator) whose training job this
    #: cluster is: rh starts it, shows its status and logs, and stops it. Not saved in the
    #: config (the job's name is).
    estimator: Any = attrs.field(default=None, eq=False, repr=False,
                                 metadata={"config": False})

    def __attrs_post_init__(self):
        name = self.short_name
        if not name:
            raise ConfigError("a sagemaker cluster needs a name: rh.sagemaker_cluster(name='sm')")
        if len(name) > MAX_NAME or not NAME_RE.fullmatch(name):
            raise ConfigError(
                f"the cluster name {name!r} cannot name a SageMaker training job: use letters, "
                f"digits and '-', starting and ending with a letter or digit, at most "
                f"{MAX_NAME} characters (e.g. 'sm-a10')")
        if bool(self.subnets) != bool(self.security_groups):
            raise ConfigError("a VPC needs both subnets= and security_groups= (or neither, for "
                              "SageMaker's own network)")
        if self.server_port is None:
            self.server_port = SERVER_PORT
        if self.estimator is not None:
            if not (callable(getattr(self.estimator, "train", None)) or
                    callable(getattr(self.estimator, "fit", None))):
                raise ConfigError(
                    f"estimator= takes a sagemaker ModelTrainer (its .train()) or a v2-style "
                    f"estimator (its .fit()); got a {type(self.estimator).__name__}")
            self.instance_type = None

    @property
    def dedicated(self) -> bool:
        """Whether this cluster is a training job of the user's own (``estimator=``), which runs
        no rh server."""
        return self.estimator is not None or (self.instance_type is None and
                                              self.job_name is not None)

    def up(self) -> SageMakerCluster:
        """Start the job (or find it running) and, unless it is a dedicated training job,
        connect to its server."""
        if self.dedicated:
            self.provider.up()
            return self
        if self.provider.endpoint() is None:
            self._forget_client()  # the job ended (autostop, down elsewhere): a new one
        return self.up_if_not()

    def up_if_not(self) -> SageMakerCluster:
        if self.dedicated:
            if self.provider.job_status() != "InProgress":
                self.provider.up()
            return self
        return super().up_if_not()

    def client(self):
        """The HTTP client of the job's rh server (starts the job on first use)."""
        if self.dedicated:
            raise ConfigError(f"cluster {self.short_name!r} is a training job of your own "
                              f"(estimator=): it runs no rh server to send functions to; make a "
                              f"cluster without estimator= for that")
        return super().client()

    def status(self) -> dict[str, Any]:
        """The training job under ``"sagemaker"`` (name, status, secondary status, failure
        reason, instance, times); with the server's own status when the cluster runs one."""
        job = self.provider.describe()
        if self.dedicated or job.get("status") != "InProgress":
            return {"sagemaker": job}
        return {**super().status(), "sagemaker": job}

    def logs(self) -> str:
        """The job's log from CloudWatch (the server's own log is in it)."""
        return self.provider.server_log()

    def down(self) -> None:
        """Stop the training job (``StopTrainingJob``); the instance is released."""
        self._forget_client()
        self.provider.down()


def sagemaker_cluster(name: str | None = None, instance_type: str | None = "ml.m5.xlarge",
                      role: str | None = None, profile: str | None = None,
                      image_uri: str | None = None, instance_count: int = 1,
                      volume_size: int = 30, autostop_mins: float | None = 60,
                      use_spot: bool = False, max_runtime_hours: int = 24,
                      region: str | None = None, subnets: list[str] | None = None,
                      security_groups: list[str] | None = None,
                      estimator: Any = None) -> SageMakerCluster:
    """A SageMaker cluster (``rh.sagemaker_cluster``): a training job that runs the rh server,
    reached through AWS Systems Manager, or with ``estimator=`` a training job of your own.

    Nothing is started until it is used (``c.up()``, or ``rh.function(fn).to(c)``); see
    ``docs/clusters/sagemaker.md`` for what each argument becomes in the job's request.
    """
    return SageMakerCluster(
        name=name, instance_type=instance_type, role=role, profile=profile, image_uri=image_uri,
        instance_count=instance_count, volume_size=volume_size, autostop_mins=autostop_mins,
        use_spot=use_spot, max_runtime_hours=max_runtime_hours, region=region, subnets=subnets,
        security_groups=security_groups, estimator=estimator)
