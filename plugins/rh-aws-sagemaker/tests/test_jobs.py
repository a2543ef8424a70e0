"""Dedicated training jobs (``estimator=``). Stood in: the SageMaker SDK's objects (the
``sagemaker`` package is not a test dependency: SDK 3 brings MLflow and more), by two small
classes with the documented methods rh calls (``ModelTrainer.train(wait=, logs=)`` with its
``base_job_name``; a v2 estimator's ``fit(wait=, job_name=)``), which create the job through
boto3 as the SDK does; the SageMaker API (``standin.py``, whose job runs its entry point here),
CloudWatch Logs (moto's server). rh's start, status, logs and stop run for real."""

from __future__ import annotations

import time

import boto3
import pytest
from conftest import ROLE_ARN

import rh_core as rh
from rh_core.errors import ConfigError

SCRIPT = ("import time\nfor i in range(1, 4):\n    print(f'epoch {i} loss {1 / i:.3f}', "
          "flush=True)\ntime.sleep(120)")


def create_job(name: str) -> None:
    boto3.Session(profile_name="standin").client("sagemaker").create_training_job(
        TrainingJobName=name, RoleArn=ROLE_ARN,
        AlgorithmSpecification={"TrainingImage": "my/image:1", "TrainingInputMode": "File",
                                "ContainerEntrypoint": ["python3", "-c", SCRIPT]},
        OutputDataConfig={"S3OutputPath": "s3://b/o"},
        ResourceConfig={"InstanceType": "ml.g5.xlarge", "InstanceCount": 1,
                        "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600})


class ModelTrainerLike:
    """``sagemaker.train.ModelTrainer``'s surface that rh uses."""

    def __init__(self, base_job_name: str):
        self.base_job_name = base_job_name

    def train(self, input_data_config=None, wait=True, logs=True):
        assert wait is False and logs is False
        create_job(f"{self.base_job_name}-{time.strftime('%Y-%m-%d-%H-%M-%S')}-123")


class EstimatorV2Like:
    """A v2 estimator's surface that rh uses."""

    def fit(self, inputs=None, wait=True, logs="All", job_name=None):
        assert wait is False and job_name
        create_job(job_name)


def wait_for(check, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} in {timeout} s")
        time.sleep(0.2)


@pytest.mark.parametrize("estimator", [ModelTrainerLike("my-train"), EstimatorV2Like()],
                         ids=["model-trainer", "v2-estimator"])
def test_a_training_job_of_your_own(standin, estimator, capfd):
    name = "sm-job-mt" if isinstance(estimator, ModelTrainerLike) else "sm-job-v2"
    job = rh.sagemaker_cluster(name=name, estimator=estimator, profile="standin")
    job.up()
    status = job.status()["sagemaker"]
    assert status["status"] == "InProgress" and status["instance_type"] == "ml.g5.xlarge"
    prefix = "my-train-" if isinstance(estimator, ModelTrainerLike) else f"{name}-"
    assert status["job_name"].startswith(prefix)
    wait_for(lambda: "epoch 3 loss 0.333" in job.logs(), "epoch 3 in the job's log")
    assert job.logs().splitlines()[:3] == ["epoch 1 loss 1.000", "epoch 2 loss 0.500",
                                           "epoch 3 loss 0.333"]
    job.up()  # running: not started twice
    assert job.status()["sagemaker"]["job_name"] == status["job_name"]
    job.save()
    again = rh.cluster(name)  # loaded by name: the job's name came with it, not the estimator
    assert again.status()["sagemaker"]["job_name"] == status["job_name"]
    with pytest.raises(ConfigError, match="is a training job of your own"):
        rh.function(print).to(again)
    again.down()
    assert job.status()["sagemaker"]["status"] == "Stopped"


def test_estimator_must_have_train_or_fit():
    with pytest.raises(ConfigError, match=r"estimator= takes a sagemaker ModelTrainer"):
        rh.sagemaker_cluster(name="bad", estimator=object())
