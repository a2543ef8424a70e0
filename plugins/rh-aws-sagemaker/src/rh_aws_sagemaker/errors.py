"""The errors of rh-aws-sagemaker: each says what was wrong and what to do."""

from __future__ import annotations

from rh_core.errors import ConfigError, ConnectionFailedError, MissingDependencyError, RhError

DOCS = "docs/clusters/sagemaker.md"


class AWSError(RhError):
    """AWS refused or failed a request; the message carries AWS's own words."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class NoCredentialsError(AWSError, ConfigError):
    """No AWS credentials were found."""


class RoleError(AWSError, ConfigError):
    """The job's IAM role is not given and cannot be found, or does not exist."""


class QuotaExceededError(AWSError):
    """The account's SageMaker quota for the instance type is used up (ResourceLimitExceeded)."""


class NameInUseError(AWSError, ConfigError):
    """A training job of the cluster's name exists and is not rh's."""


class JobFailedError(AWSError, ConnectionFailedError):
    """The training job failed or stopped while rh waited for it; its FailureReason is in the
    message."""


class SessionManagerMissingError(MissingDependencyError):
    """The AWS CLI v2 or its session-manager-plugin, which the ``aws_ssm`` connection runs, is
    missing (neither is a Python package)."""
