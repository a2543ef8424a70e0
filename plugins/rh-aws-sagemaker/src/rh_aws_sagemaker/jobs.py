"""Dedicated training jobs: ``rh.sagemaker_cluster(name=..., estimator=trainer)``.

rh does not depend on the ``sagemaker`` package (SDK 3 pulls in MLflow and much more). It
drives the object you give through its documented methods, by duck typing:

- a ``ModelTrainer`` (SDK 3 ``sagemaker.train.ModelTrainer``, or ``sagemaker.modules.train``
  in late 2.x): ``trainer.train(wait=False, logs=False)`` starts the job; its name is
  ``<base_job_name>-<time>``, found with ListTrainingJobs (the newest job with that prefix
  created since the call);
- a v2-style estimator (``sagemaker.estimator.Estimator`` and the framework estimators of SDK
  2.x): ``estimator.fit(wait=False, job_name=NAME)`` starts it under a name rh chooses.

Then the job is rh's like any other: tagged ``rh:cluster=<name>``, its status, CloudWatch log
and StopTrainingJob through boto3.
"""

from __future__ import annotations

import datetime
import time

from rh_aws_sagemaker import request
from rh_aws_sagemaker.errors import JobFailedError
from rh_core.errors import ConfigError
from rh_core.progress import Steps


def start(provider) -> None:
    """Start the estimator's job (unless it runs already); remember its name."""
    c = provider.cluster
    est = c.estimator
    aws = provider.aws
    if provider.job_name and provider.job_status() == "InProgress":
        return None
    if est is None:
        raise ConfigError(f"cluster {c.short_name!r} is a training job of "
                          f"{provider.job_name!r}, which has ended; make the cluster again with "
                          f"estimator= to start a new job")
    steps = Steps(c.short_name)
    since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
    if callable(getattr(est, "train", None)):
        with steps.step("starting the ModelTrainer's training job") as s:
            est.train(wait=False, logs=False)
            prefix = getattr(est, "base_job_name", None) or c.short_name
            job_name = _newest(aws, prefix, since)
            s["note"] = job_name
    else:
        from rh_aws_sagemaker.provider import now_stamp  # provider imports this module

        job_name = f"{c.short_name}-{now_stamp()}"
        with steps.step(f"starting the estimator's training job {job_name}"):
            est.fit(wait=False, job_name=job_name)
    job = provider._describe(job_name)
    if job is None:
        raise JobFailedError(f"the training job {job_name} the estimator started is not found")
    aws.call(aws.sagemaker.add_tags, ResourceArn=job["TrainingJobArn"],
             Tags=[{"Key": request.TAG_CLUSTER, "Value": c.short_name}],
             what=f"job {job_name}")
    provider._remember(job_name)
    return None


def _newest(aws, prefix: str, since: datetime.datetime) -> str:
    """The newest training job whose name starts with ``prefix``, created after ``since``
    (ListTrainingJobs takes a moment to show a new job)."""
    deadline = time.monotonic() + 60
    while True:
        found = aws.call(aws.sagemaker.list_training_jobs, NameContains=prefix,
                         CreationTimeAfter=since, SortBy="CreationTime",
                         SortOrder="Descending")["TrainingJobSummaries"]
        found = [j for j in found if j["TrainingJobName"].startswith(prefix)]
        if found:
            return found[0]["TrainingJobName"]
        if time.monotonic() > deadline:
            raise JobFailedError(f"the ModelTrainer's train() returned, but no training job "
                                 f"named {prefix}-... shows up in ListTrainingJobs")
        time.sleep(1.0)
