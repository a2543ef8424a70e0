"""Which IAM role a SageMaker job runs as: the cluster's ``role`` (an ARN, or a role name found
with IAM), else the ``role_arn`` of the profile in ~/.aws/config (``profile=``, else
``$AWS_PROFILE``, else ``default``), else the role the caller's credentials are."""

from __future__ import annotations

import os
import re

from rh_aws_sagemaker.aws import AWS
from rh_aws_sagemaker.errors import DOCS, RoleError

ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")
ASSUMED = re.compile(r"arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([\w+=,.@-]+)/.+")


def resolve_role(aws: AWS, role: str | None, profile: str | None) -> str:
    """The ARN of the role the job runs as (see the module's docstring)."""
    if role:
        if role.startswith("arn:"):
            if not ROLE_ARN.fullmatch(role):
                raise RoleError(f"role={role!r} is not an IAM role ARN (arn:aws:iam::"
                                f"<12-digit account>:role/<name>): give such an ARN or a role "
                                f"name")
            return role
        name = role.rsplit("/", 1)[-1]
        return aws.call(aws.client("iam").get_role, RoleName=name,
                        what=f"role {name!r}")["Role"]["Arn"]
    chosen = profile or os.environ.get("AWS_PROFILE") or "default"
    arn = profile_role_arn(chosen)
    if arn:
        return arn
    caller = aws.call(aws.client("sts").get_caller_identity)["Arn"]
    m = ASSUMED.fullmatch(caller)
    if m:
        name = m.group(3)
        return aws.call(aws.client("iam").get_role, RoleName=name,
                        what=f"role {name!r}")["Role"]["Arn"]
    raise RoleError(
        f"no IAM role for the SageMaker job: your credentials are {caller}, not a role, and "
        f"the profile {chosen!r} has no role_arn. Give one of: role= (a role ARN or name, "
        f"e.g. role='SageMakerRole'), profile= (a profile of ~/.aws/config with role_arn), or "
        f"AWS_PROFILE set to such a profile (see {DOCS})")


def profile_role_arn(profile: str) -> str | None:
    """The ``role_arn`` of ``profile`` in the AWS config files, or None."""
    import botocore.session  # with boto3, only when AWS is first used

    try:
        config = botocore.session.Session(profile=profile).get_scoped_config()
    except Exception:  # noqa: BLE001 - an unknown profile has no role_arn
        return None
    return config.get("role_arn")
