"""Roles, credentials, the job's files and tags, names, and the tools the connection runs.
Stood in: AWS is moto's server (IAM, STS, S3, SageMaker), reached by the real boto3 over
HTTP; the AWS CLI is a fake ``aws`` on PATH (written by the test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3
import pytest
from conftest import ROLE, ROLE_ARN, write_fake_tools
from rh_aws_sagemaker.aws import AWS
from rh_aws_sagemaker.cluster import SageMakerCluster
from rh_aws_sagemaker.errors import (
    NameInUseError,
    NoCredentialsError,
    RoleError,
    SessionManagerMissingError,
)
from rh_aws_sagemaker.roles import resolve_role

import rh_core as rh
from rh_core.progress import Steps


@pytest.fixture
def aws(moto):
    return AWS(None, None)


def test_a_role_arn_is_taken_as_it_is(aws):
    assert resolve_role(aws, ROLE_ARN, None) == ROLE_ARN


def test_a_role_name_is_found_with_iam(aws):
    assert resolve_role(aws, ROLE, None) == ROLE_ARN


def test_a_role_that_does_not_exist(aws):
    with pytest.raises(RoleError, match=r"NoSuchRole|cannot be found.*give an existing role"):
        resolve_role(aws, "NoSuchRole", None)


def test_a_malformed_role_arn(aws):
    with pytest.raises(RoleError, match="is not an IAM role ARN"):
        resolve_role(aws, "arn:aws:iam::12:user/me", None)


@pytest.fixture
def profiles(aws_files):
    """Adds ``[profile sagemaker]`` (with role_arn) and ``[profile plain]`` for one test."""
    before = aws_files["config"].read_text()
    aws_files["config"].write_text(
        before + "[profile sagemaker]\nregion = us-east-1\nrole_arn = "
        "arn:aws:iam::123456789012:role/FromProfile\nsource_profile = default\n"
        "[profile plain]\nregion = us-east-1\n")
    yield
    aws_files["config"].write_text(before)


def test_the_role_arn_of_the_given_profile(aws, profiles):
    assert resolve_role(aws, None, "sagemaker") == "arn:aws:iam::123456789012:role/FromProfile"


def test_the_role_arn_of_aws_profile(aws, profiles, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "sagemaker")
    assert resolve_role(aws, None, None) == "arn:aws:iam::123456789012:role/FromProfile"


def test_no_role_anywhere_names_the_three_ways(aws, profiles):
    """moto's caller is an IAM user, not a role; the profile has no role_arn."""
    with pytest.raises(RoleError) as e:
        resolve_role(aws, None, "plain")
    said = str(e.value)
    assert ":123456789012:user/" in said and "'plain' has no role_arn" in said
    for way in ("role=", "profile=", "AWS_PROFILE"):
        assert way in said


def test_no_credentials_says_how_to_give_them(moto, tmp_path, monkeypatch):
    empty = tmp_path / "none"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    c = rh.sagemaker_cluster(name="nocreds", role=ROLE)
    with pytest.raises(NoCredentialsError, match=r"no AWS credentials.*AWS_PROFILE.*aws "
                       r"configure"):
        c.up()


def test_an_unknown_profile(moto):
    with pytest.raises(rh.ConfigError,
                       match="the AWS profile 'nosuch' is not in"):
        rh.sagemaker_cluster(name="np", role=ROLE, profile="nosuch").up()


def test_launch_makes_the_job_its_files_and_tags(moto):
    """The job as moto keeps it: rh's tags, the two channels, the entry point; the owner token
    only in S3 (encrypted), never in the request or the config."""
    c = rh.sagemaker_cluster(name="sm-moto", role=ROLE, autostop_mins=15)
    name = c.provider.launch(Steps("sm-moto"))
    assert name == "sm-moto"
    sm = boto3.client("sagemaker")
    job = sm.describe_training_job(TrainingJobName=name)
    assert job["RoleArn"] == ROLE_ARN
    assert job["AlgorithmSpecification"]["ContainerEntrypoint"] == [
        "python3", "/opt/ml/input/data/rhcluster/node.py"]
    assert job["ResourceConfig"]["KeepAlivePeriodInSeconds"] == 900
    assert [ch["ChannelName"] for ch in job["InputDataConfig"]] == ["rh", "rhcluster"]
    tags = sm.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]
    assert {"Key": "rh:cluster", "Value": "sm-moto"} in tags
    token = c.provider.token()
    assert token not in json.dumps(job, default=str) and token not in json.dumps(c.config())
    s3 = boto3.client("s3")
    bucket = "sagemaker-us-east-1-123456789012"
    obj = s3.get_object(Bucket=bucket, Key="rh/jobs/sm-moto/token")
    assert obj["Body"].read().decode() == token and obj["ServerSideEncryption"] == "AES256"
    wheels = job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    keys = [o["Key"] for o in s3.list_objects_v2(
        Bucket=bucket, Prefix=wheels.split(bucket + "/")[1])["Contents"]]
    assert any(k.endswith(".whl") and "/rh_core-" in k for k in keys)
    # The next bring-up of the same cluster names its job <name>-<time>: names are never reused.
    again = c.provider._new_job_name()
    assert again.startswith("sm-moto-") and len(again) == len("sm-moto-") + 14


def test_a_name_in_use_by_a_job_that_is_not_rhs(moto):
    boto3.client("sagemaker").create_training_job(
        TrainingJobName="taken", RoleArn=ROLE_ARN,
        AlgorithmSpecification={"TrainingImage": "x", "TrainingInputMode": "File"},
        OutputDataConfig={"S3OutputPath": "s3://b/o"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                        "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 60})
    with pytest.raises(NameInUseError, match=r"a SageMaker training job named 'taken' exists "
                       r"\(Completed\) and is not an rh cluster's.*another name"):
        rh.sagemaker_cluster(name="taken", role=ROLE).up()


def test_factory_and_rh_cluster_make_the_same_record():
    import rh_core

    made = rh_core.sagemaker_cluster(name="same", instance_type="ml.g5.xlarge", role=ROLE_ARN,
                                     use_spot=True, subnets=["s-1"], security_groups=["sg-1"])
    other = rh.cluster(name="same", provider="sagemaker", instance_type="ml.g5.xlarge",
                       role=ROLE_ARN, use_spot=True, subnets=["s-1"], security_groups=["sg-1"])
    assert made.config() == other.config()
    assert made.config()["subtype"] == "sagemaker"
    assert made.server_connection_type == "aws_ssm"
    made.save()
    loaded = rh.cluster("same")
    assert isinstance(loaded, SageMakerCluster) and loaded.config() == made.config()


def test_a_vpc_needs_both_parts():
    with pytest.raises(rh.ConfigError,
                       match="needs both subnets= and security_groups="):
        rh.sagemaker_cluster(name="v", subnets=["s-1"])


def test_rh_plugins_lists_the_provider_and_its_connection():
    out = subprocess.run([sys.executable, "-m", "rh_core.cli", "plugins", "--json"],
                         capture_output=True, text=True, check=True).stdout
    mine = {p["name"]: p for p in json.loads(out)}["sagemaker"]
    assert mine["distribution"] == "rh-aws-sagemaker"
    assert mine["registers"] == ["provider sagemaker", "connection aws_ssm"]


@pytest.mark.parametrize("version, plugin, said", [
    ("aws-cli/1.33.7 Python/3.11.7 Linux/6.1 botocore/1.34.7", True,
     r"says 'aws-cli/1\.33\.7.*needs the AWS CLI v2.*pip install awscli. is v1"),
    (None, False, r"session-manager-plugin is not on PATH.*install the Session Manager plugin"),
])
def test_the_connection_says_which_tool_is_missing(sm, tmp_path, monkeypatch, version, plugin,
                                                   said):
    """The running cluster of the session, reached with the AWS CLI v1, or without the
    session-manager-plugin, on PATH."""
    sm.up_if_not()
    folder = write_fake_tools(tmp_path / "bin", tmp_path, version=version, plugin=plugin)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}/usr/bin{os.pathsep}/bin")
    sm.save()
    again = rh.cluster("sm-test")
    with pytest.raises(SessionManagerMissingError, match=said):
        again.client()


def test_no_aws_cli_at_all(sm, tmp_path, monkeypatch):
    sm.up_if_not()
    monkeypatch.setenv("PATH", str(tmp_path))
    sm.save()
    with pytest.raises(SessionManagerMissingError, match=r"`aws` is not on PATH: install the "
                       r"AWS CLI v2.*then install the Session Manager plugin"):
        rh.cluster("sm-test").client()


def test_the_region_comes_from_rhs_config_when_not_given(moto, monkeypatch):
    """``default_region`` of rh's config (here through RH_DEFAULT_REGION) over the profile's."""
    monkeypatch.setenv("RH_DEFAULT_REGION", "eu-west-1")
    assert rh.sagemaker_cluster(name="r1", role=ROLE).provider.aws.region == "eu-west-1"
    given = rh.sagemaker_cluster(name="r2", role=ROLE, region="ap-south-1")
    assert given.provider.aws.region == "ap-south-1"
    monkeypatch.delenv("RH_DEFAULT_REGION")
    assert rh.sagemaker_cluster(name="r3", role=ROLE).provider.aws.region == "us-east-1"


def test_the_role_the_credentials_are(moto, profiles, monkeypatch):
    """Credentials of an assumed-role session (as on a SageMaker notebook): the role itself."""
    creds = boto3.client("sts").assume_role(RoleArn=ROLE_ARN,
                                            RoleSessionName="notebook")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
    assert resolve_role(AWS(None, None), None, "plain") == ROLE_ARN


def test_boto3_loads_only_when_a_cluster_talks_to_aws():
    """Reading the registry (``rh plugins``, any ``rh`` command) and making a cluster record
    do not import boto3 (~200 ms)."""
    code = ("import sys, rh_core as rh\nfrom rh_core.plugin.registry import registry\n"
            "registry().provider('sagemaker'); registry().connection_type('aws_ssm')\n"
            "rh.sagemaker_cluster(name='x')\nprint('boto3' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
