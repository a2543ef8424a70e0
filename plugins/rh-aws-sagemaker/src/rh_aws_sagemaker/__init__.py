"""rh-aws-sagemaker: SageMaker clusters (a training job running the rh server, reached through
AWS Systems Manager) and dedicated training jobs."""

from __future__ import annotations

from rh_core import hookimpl


@hookimpl
def rh_compute_providers(register):
    # The provider (and boto3, ~200 ms to import) loads when the registry is read, not when
    # every installed plugin is imported.
    from rh_aws_sagemaker.provider import SageMakerProvider

    register(SageMakerProvider)


@hookimpl
def rh_connection_types(register):
    from rh_aws_sagemaker.ssm import SSMConnection  # the same: loaded when the registry is read

    register(SSMConnection)
