"""boto3 sessions for a cluster, and AWS's errors turned into rh's."""

from __future__ import annotations

from rh_aws_sagemaker.errors import (
    DOCS,
    AWSError,
    NameInUseError,
    NoCredentialsError,
    QuotaExceededError,
    RoleError,
)
from rh_core.errors import ConfigError

NO_CREDENTIALS = ("no AWS credentials were found: set AWS_PROFILE to a profile of "
                  "~/.aws/credentials or ~/.aws/config, pass profile= to the cluster, or run "
                  "`aws configure` (see " + DOCS + ")")


class AWS:
    """The boto3 clients of one cluster (its profile and region), made on first use. Endpoints
    come from boto3's own configuration (``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_<SERVICE>``,
    the profile's ``endpoint_url``)."""

    def __init__(self, profile: str | None, region: str | None):
        # boto3 costs ~200 ms to import: only when a cluster first talks to AWS.
        import boto3
        import botocore.exceptions

        try:
            self.session = boto3.Session(profile_name=profile, region_name=region)
        except botocore.exceptions.ProfileNotFound:
            raise ConfigError(f"the AWS profile {profile!r} is not in ~/.aws/config or "
                              f"~/.aws/credentials: give an existing profile=, or create it "
                              f"with `aws configure --profile {profile}`") from None
        if not self.session.region_name:
            raise ConfigError("no AWS region: pass region= to the cluster, set "
                              "AWS_DEFAULT_REGION, or add `region = ...` to the profile in "
                              "~/.aws/config")
        self.profile, self.region = profile, self.session.region_name
        self._clients: dict = {}

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(service)
        return self._clients[service]

    @property
    def sagemaker(self):
        return self.client("sagemaker")

    def account(self) -> str:
        return self.call(self.client("sts").get_caller_identity)["Account"]

    def call(self, method, *args, what: str = "", **kwargs):
        """``method(*args, **kwargs)`` with AWS's errors turned into rh's (``what`` names the
        object, for the message)."""
        import botocore.exceptions  # loaded already with the clients (see __init__)

        try:
            return method(*args, **kwargs)
        except (botocore.exceptions.NoCredentialsError,
                botocore.exceptions.PartialCredentialsError):
            raise NoCredentialsError(NO_CREDENTIALS) from None
        except botocore.exceptions.ClientError as e:
            raise translate(e, method.__name__, what) from None
        except botocore.exceptions.EndpointConnectionError as e:
            raise AWSError(f"cannot reach AWS ({e}): check your network and the region "
                           f"{self.region!r}") from None


def translate(e, operation: str, what: str = "") -> AWSError:
    """The rh error for botocore's ``ClientError`` ``e`` raised by ``operation``."""
    err = e.response.get("Error", {})
    code, message = err.get("Code", ""), err.get("Message", "")
    target = f" ({what})" if what else ""
    if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId",
                "UnrecognizedClientException", "SignatureDoesNotMatch"):
        return NoCredentialsError(f"AWS did not accept your credentials ({code}: {message}): "
                                  f"refresh them (aws sso login, or `aws configure`)", code)
    if code == "ResourceLimitExceeded":
        return QuotaExceededError(
            f"SageMaker refused {operation}{target}: {message}. The account's quota for this "
            f"instance type (training job usage) is used up: stop other jobs, pick another "
            f"instance_type, or ask for more in the Service Quotas console.", code)
    if code == "ResourceInUse":
        return NameInUseError(f"SageMaker refused {operation}{target}: {message}", code)
    if code in ("AccessDenied", "AccessDeniedException"):
        return AWSError(f"AWS refused {operation}{target} (access denied): {message}. Your "
                        f"identity needs that permission (see {DOCS}).", code)
    if code == "NoSuchEntity":
        return RoleError(f"{message}{target}: give an existing role (see {DOCS})", code)
    if code == "ValidationException" and ("instance type" in message.lower() or
                                          "instancetype" in message.lower()):
        return AWSError(f"SageMaker does not take this instance type{target}: {message}. Pick "
                        f"one of the training instance types (ml.m5.xlarge, ml.g5.xlarge...) "
                        f"offered in the region.", code)
    return AWSError(f"AWS answered {code} to {operation}{target}: {message}", code)
