"""A SageMaker cluster's spec as a ``CreateTrainingJob`` request: one row per request field,
so the request can be read (and tested) field by field."""

from __future__ import annotations

from typing import Any, Callable

import attrs

from rh_aws_sagemaker.cluster import SageMakerCluster
from rh_core import __version__
from rh_core.errors import ConfigError

#: The default image: the SageMaker PyTorch training image of the region (Python 3.11).
DEFAULT_IMAGE_ACCOUNT = "763104351884"
DEFAULT_IMAGE_TAGS = {"cpu": "2.5.1-cpu-py311-ubuntu22.04-sagemaker",
                      "gpu": "2.5.1-gpu-py311-cu124-ubuntu22.04-sagemaker"}
DEFAULT_IMAGE_PYTHON = "3.11"
GPU_FAMILIES = ("ml.g", "ml.p")
#: The warm pool keeps an instance at most this long after its job ends (SageMaker's limit).
MAX_KEEP_ALIVE = 3600
#: Where the node program is in the job's container (the ``rhcluster`` channel).
NODE_PROGRAM = "/opt/ml/input/data/rhcluster/node.py"
TAG_CLUSTER = "rh:cluster"
TAG_VERSION = "rh:version"


def default_image(region: str, instance_type: str) -> str:
    """The SageMaker PyTorch training image of ``region`` for ``instance_type`` (CPU or GPU)."""
    if instance_type.startswith(("ml.trn", "ml.inf")):
        raise ConfigError(f"{instance_type} (AWS Trainium/Inferentia) has no default image in "
                          f"rh: give image_uri= (a Neuron training image with Python "
                          f"{DEFAULT_IMAGE_PYTHON})")
    kind = "gpu" if instance_type.startswith(GPU_FAMILIES) else "cpu"
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return (f"{DEFAULT_IMAGE_ACCOUNT}.dkr.ecr.{region}.{domain}/pytorch-training:"
            f"{DEFAULT_IMAGE_TAGS[kind]}")


@attrs.frozen
class JobSpec:
    """What the request is made of: the cluster and what bring-up found for it."""

    cluster: SageMakerCluster
    job_name: str
    role_arn: str
    image: str
    #: ``s3://bucket/prefix/`` of the wheels (channel ``rh``) and of the job's own files
    #: (channel ``rhcluster``: the node program, the install script, the owner token).
    wheels_uri: str
    job_uri: str
    output_uri: str
    extras: str = "server"
    #: The Python the wheels were built for (checked on the node).
    python: str = ""


def _channel(name: str, uri: str) -> dict:
    return {"ChannelName": name, "InputMode": "File",
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                            "S3DataDistributionType": "FullyReplicated"}}}


def _resource_config(s: JobSpec) -> dict:
    c = s.cluster
    out = {"InstanceType": c.instance_type, "InstanceCount": c.instance_count,
           "VolumeSizeInGB": c.volume_size}
    # A warm pool keeps the instance after an autostop, for a quick next bring-up; SageMaker
    # has none for managed spot training.
    if c.autostop_mins and not c.use_spot:
        out["KeepAlivePeriodInSeconds"] = int(min(c.autostop_mins * 60, MAX_KEEP_ALIVE))
    return out


def _stopping(s: JobSpec) -> dict:
    seconds = s.cluster.max_runtime_hours * 3600
    out = {"MaxRuntimeInSeconds": seconds}
    if s.cluster.use_spot:
        out["MaxWaitTimeInSeconds"] = seconds  # waiting for spot capacity counts in it
    return out


def _environment(s: JobSpec) -> dict:
    c = s.cluster
    env = {"RH_CLUSTER_NAME": c.short_name, "RH_SERVER_PORT": str(c.server_port),
           "RH_EXTRAS": s.extras}
    if c.autostop_mins:
        env["RH_AUTOSTOP_MINS"] = f"{c.autostop_mins:g}"
    if s.python:
        env["RH_PYTHON"] = s.python
    return env


def _vpc(s: JobSpec) -> dict | None:
    c = s.cluster
    if not c.subnets:
        return None
    return {"Subnets": list(c.subnets), "SecurityGroupIds": list(c.security_groups)}


#: Request field -> its value for a spec (None: the field is left out).
ROWS: list[tuple[str, Callable[[JobSpec], Any]]] = [
    ("TrainingJobName", lambda s: s.job_name),
    ("RoleArn", lambda s: s.role_arn),
    ("AlgorithmSpecification", lambda s: {
        "TrainingImage": s.image, "TrainingInputMode": "File",
        "ContainerEntrypoint": ["python3", NODE_PROGRAM]}),
    ("InputDataConfig", lambda s: [_channel("rh", s.wheels_uri),
                                   _channel("rhcluster", s.job_uri)]),
    ("OutputDataConfig", lambda s: {"S3OutputPath": s.output_uri}),
    ("ResourceConfig", _resource_config),
    ("StoppingCondition", _stopping),
    ("EnableManagedSpotTraining", lambda s: True if s.cluster.use_spot else None),
    ("VpcConfig", _vpc),
    ("Environment", _environment),
    # The SSM agent runs in the container: the aws_ssm connection's way in.
    ("RemoteDebugConfig", lambda s: {"EnableRemoteDebug": True}),
    ("Tags", lambda s: [{"Key": TAG_CLUSTER, "Value": s.cluster.short_name},
                        {"Key": TAG_VERSION, "Value": __version__}]),
]


def training_job_request(spec: JobSpec) -> dict[str, Any]:
    """The ``CreateTrainingJob`` request for ``spec``."""
    out = {}
    for field, value in ROWS:
        v = value(spec)
        if v is not None:
            out[field] = v
    return out
