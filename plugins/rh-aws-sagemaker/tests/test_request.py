"""The CreateTrainingJob request and the job's status sequences. Stood in: SageMaker's answers
come from botocore's ``Stubber`` on the provider's real boto3 SageMaker client (it checks each
request against SageMaker's model and against the exact parameters given here); S3, IAM and STS
are moto's server. Nothing runs the job."""

from __future__ import annotations

import datetime

import pytest
from botocore.stub import ANY, Stubber
from conftest import ROLE_ARN
from rh_aws_sagemaker import request
from rh_aws_sagemaker.errors import AWSError, JobFailedError, QuotaExceededError

import rh_core as rh
from rh_core import __version__
from rh_core.errors import ConfigError

NOW = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.timezone.utc)
NOT_FOUND = ("ValidationException", "Requested resource not found.")


def job(name: str, status: str, secondary: str, message: str = "", **extra) -> dict:
    out = {"TrainingJobName": name,
           "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{name}",
           "ModelArtifacts": {"S3ModelArtifacts": "s3://b/o"}, "TrainingJobStatus": status,
           "SecondaryStatus": secondary, "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
           "CreationTime": NOW, **extra}
    if message:
        out["SecondaryStatusTransitions"] = [{"Status": secondary, "StartTime": NOW,
                                              "StatusMessage": message}]
    return out


@pytest.fixture
def stubbed(moto):
    """A cluster whose provider's SageMaker client is stubbed: ``(cluster, stubber)``."""
    made = []

    def make(name: str, **fields):
        cluster = rh.sagemaker_cluster(name=name, role=ROLE_ARN, **fields)
        stubber = Stubber(cluster.provider.aws.sagemaker)
        stubber.activate()
        made.append(stubber)
        return cluster, stubber

    yield make
    for stubber in made:
        stubber.assert_no_pending_responses()
        stubber.deactivate()


def test_the_create_training_job_request_field_by_field(stubbed):
    """The request rh sends for a GPU cluster on spot with a VPC, checked as a whole by the
    Stubber (any field more, less or different fails)."""
    c, stub = stubbed("sm-req", instance_type="ml.g5.xlarge", instance_count=1, volume_size=50,
                      autostop_mins=30, use_spot=True, max_runtime_hours=5,
                      subnets=["subnet-1"], security_groups=["sg-1"])
    stub.add_client_error("describe_training_job", *NOT_FOUND,
                          expected_params={"TrainingJobName": "sm-req"})
    bucket = "s3://sagemaker-us-east-1-123456789012/rh"
    expected = {
        "TrainingJobName": "sm-req",
        "RoleArn": ROLE_ARN,
        "AlgorithmSpecification": {
            "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:"
                             "2.5.1-gpu-py311-cu124-ubuntu22.04-sagemaker",
            "TrainingInputMode": "File",
            "ContainerEntrypoint": ["python3", "/opt/ml/input/data/rhcluster/node.py"]},
        "InputDataConfig": [
            {"ChannelName": "rh", "InputMode": "File", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": ANY,
                "S3DataDistributionType": "FullyReplicated"}}},
            {"ChannelName": "rhcluster", "InputMode": "File", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"{bucket}/jobs/sm-req/",
                "S3DataDistributionType": "FullyReplicated"}}}],
        "OutputDataConfig": {"S3OutputPath": f"{bucket}/output/"},
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1,
                           "VolumeSizeInGB": 50},  # no warm pool with spot
        "StoppingCondition": {"MaxRuntimeInSeconds": 5 * 3600, "MaxWaitTimeInSeconds": 5 * 3600},
        "EnableManagedSpotTraining": True,
        "VpcConfig": {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]},
        "Environment": {"RH_CLUSTER_NAME": "sm-req", "RH_SERVER_PORT": "32300",
                        "RH_EXTRAS": "server", "RH_AUTOSTOP_MINS": "30", "RH_PYTHON": "3.11"},
        "RemoteDebugConfig": {"EnableRemoteDebug": True},
        "Tags": [{"Key": "rh:cluster", "Value": "sm-req"},
                 {"Key": "rh:version", "Value": __version__}],
    }
    stub.add_response("create_training_job", {"TrainingJobArn": "arn:x"}, expected)
    stub.add_response("describe_training_job", job("sm-req", "InProgress", "Training"),
                      {"TrainingJobName": "sm-req"})
    endpoint = c.provider.up()
    assert (endpoint.host, endpoint.port) == ("127.0.0.1", 32300)
    assert endpoint.token.startswith("rho_")
    assert c.job_name == "sm-req"


@pytest.mark.parametrize("fields, field, value", [
    ({}, "ResourceConfig", {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1,
                            "VolumeSizeInGB": 30, "KeepAlivePeriodInSeconds": 3600}),
    ({"autostop_mins": 5}, "ResourceConfig", {"InstanceType": "ml.m5.xlarge",
                                              "InstanceCount": 1, "VolumeSizeInGB": 30,
                                              "KeepAlivePeriodInSeconds": 300}),
    ({"autostop_mins": None}, "Environment", {"RH_CLUSTER_NAME": "row", "RH_SERVER_PORT": "32300",
                                              "RH_EXTRAS": "server"}),
    ({}, "StoppingCondition", {"MaxRuntimeInSeconds": 24 * 3600}),
    ({}, "EnableManagedSpotTraining", None),
    ({}, "VpcConfig", None),
    ({"image_uri": "my/image:1"}, "AlgorithmSpecification", {
        "TrainingImage": "my/image:1", "TrainingInputMode": "File",
        "ContainerEntrypoint": ["python3", "/opt/ml/input/data/rhcluster/node.py"]}),
])
def test_request_rows(fields, field, value):
    """One row of the request table per case (no AWS involved)."""
    c = rh.sagemaker_cluster(name="row", role=ROLE_ARN, **fields)
    spec = request.JobSpec(cluster=c, job_name="row", role_arn=ROLE_ARN,
                           image=c.image_uri or request.default_image("us-east-1",
                                                                      c.instance_type),
                           wheels_uri="s3://b/w/", job_uri="s3://b/j/", output_uri="s3://b/o/")
    assert request.training_job_request(spec).get(field) == value


def test_default_images_by_instance_family():
    assert request.default_image("eu-west-1", "ml.p4d.24xlarge").endswith("gpu-py311-cu124-"
                                                                           "ubuntu22.04-sagemaker")
    assert request.default_image("eu-west-1", "ml.c5.2xlarge").startswith(
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311")
    with pytest.raises(ConfigError, match="Trainium/Inferentia.*image_uri="):
        request.default_image("us-east-1", "ml.trn1.2xlarge")


def test_up_shows_each_secondary_status_until_training(stubbed, capfd):
    """A job seen by the cluster (already created) going Starting -> Downloading -> Training."""
    c, stub = stubbed("sm-seq")
    c.job_name = "sm-seq"
    stub.add_response("describe_training_job", job("sm-seq", "InProgress", "Starting"))
    for secondary, message in (("Starting", "Launching requested ML instances"),
                               ("Starting", "Preparing the instances for training"),
                               ("Downloading", "Downloading the training image"),
                               ("Training", "Training in progress")):
        stub.add_response("describe_training_job",
                          job("sm-seq", "InProgress", secondary, message))
    c.provider.up()
    shown = capfd.readouterr().err
    assert "job sm-seq: Starting: Launching requested ML instances" in shown
    assert "job sm-seq: Downloading: Downloading the training image" in shown
    assert "job sm-seq: Training (the container runs)" in shown


def test_a_job_failing_while_starting_says_its_failure_reason(stubbed):
    c, stub = stubbed("sm-fail")
    c.job_name = "sm-fail"
    stub.add_response("describe_training_job", job("sm-fail", "InProgress", "Starting"))
    stub.add_response("describe_training_job", job("sm-fail", "InProgress", "Starting"))
    stub.add_response("describe_training_job", job(
        "sm-fail", "Failed", "Failed", FailureReason="CapacityError: Unable to provision "
        "requested ML compute capacity. Please retry using a different ML instance type."))
    with pytest.raises(JobFailedError, match=r"the training job sm-fail failed while starting: "
                       r"CapacityError: Unable to provision requested ML compute capacity.*"
                       r"c\.logs\(\)"):
        c.provider.up()


def test_a_spot_interruption_is_shown_and_waited_out(stubbed, capfd):
    c, stub = stubbed("sm-spot", use_spot=True)
    c.job_name = "sm-spot"
    stub.add_response("describe_training_job", job("sm-spot", "InProgress", "Starting"))
    for secondary in ("Starting", "Interrupted", "Starting", "Training"):
        stub.add_response("describe_training_job", job("sm-spot", "InProgress", secondary))
    c.provider.up()
    assert "job sm-spot: Interrupted" in capfd.readouterr().err


def test_spot_capacity_never_found_says_so(stubbed):
    c, stub = stubbed("sm-spot2", use_spot=True)
    c.job_name = "sm-spot2"
    stub.add_response("describe_training_job", job("sm-spot2", "InProgress", "Starting"))
    stub.add_response("describe_training_job", job("sm-spot2", "InProgress", "Starting"))
    stub.add_response("describe_training_job", job("sm-spot2", "Stopped", "MaxWaitTimeExceeded"))
    with pytest.raises(JobFailedError, match="interrupted \\(spot capacity reclaimed\\)"):
        c.provider.up()


def test_down_stops_the_job_and_waits_for_stopped(stubbed, capfd):
    c, stub = stubbed("sm-stop")
    c.job_name = "sm-stop"
    stub.add_response("describe_training_job", job("sm-stop", "InProgress", "Training"))
    stub.add_response("stop_training_job", {}, {"TrainingJobName": "sm-stop"})
    stub.add_response("describe_training_job", job("sm-stop", "Stopping", "Stopping"))
    stub.add_response("describe_training_job", job("sm-stop", "Stopped", "Stopped"))
    c.down()
    assert "stopping training job sm-stop, Stopped" in capfd.readouterr().err
    stub.add_response("describe_training_job", job("sm-stop", "Stopped", "Stopped"))
    c.down()  # idempotent: a stopped job is left alone


def test_quota_exceeded_says_what_to_do(stubbed):
    c, stub = stubbed("sm-quota", instance_type="ml.p4d.24xlarge")
    stub.add_client_error("describe_training_job", *NOT_FOUND)
    stub.add_client_error(
        "create_training_job", "ResourceLimitExceeded",
        "The account-level service limit 'ml.p4d.24xlarge for training job usage' is 0 "
        "Instances, with current utilization of 0 Instances and a request delta of 1 Instances.")
    with pytest.raises(QuotaExceededError, match=r"ml\.p4d\.24xlarge for training job usage.*"
                       r"quota for this instance type.*Service Quotas"):
        c.provider.up()


def test_an_instance_type_sagemaker_does_not_know(stubbed):
    c, stub = stubbed("sm-type", instance_type="ml.zz9.huge")
    stub.add_client_error("describe_training_job", *NOT_FOUND)
    stub.add_client_error(
        "create_training_job", "ValidationException",
        "1 validation error detected: Value 'ml.zz9.huge' at 'resourceConfig.instanceType' "
        "failed to satisfy constraint: Member must satisfy enum value set: [ml.m5.xlarge]")
    with pytest.raises(AWSError, match=r"SageMaker does not take this instance type.*"
                       r"ml\.zz9\.huge"):
        c.provider.up()


def test_instance_types_without_ml_prefix_are_refused_before_any_request():
    with pytest.raises(ConfigError, match=r"'g5\.xlarge' is not a SageMaker instance type.*"
                       r"ml\.g5\.xlarge"):
        rh.sagemaker_cluster(name="x", instance_type="g5.xlarge")


def test_several_instances_are_asked_for_and_get_ray(moto):
    """instance_count=2: the request asks SageMaker for two instances, whose node program
    installs rh-core[server,ray] (Ray only on several instances)."""
    c = rh.sagemaker_cluster(name="sm-many", role=ROLE_ARN, instance_count=2)
    assert c.provider.extras == "server,ray" and c.provider.nodes() == ["algo-1", "algo-2"]
    assert rh.sagemaker_cluster(name="sm-one", role=ROLE_ARN).provider.extras == "server"
    spec = request.JobSpec(cluster=c, job_name="sm-many", role_arn=ROLE_ARN, image="image",
                           wheels_uri="s3://b/w/", job_uri="s3://b/j/", output_uri="s3://b/o/",
                           extras=c.provider.extras)
    made = request.training_job_request(spec)
    assert made["ResourceConfig"]["InstanceCount"] == 2
    assert made["Environment"]["RH_EXTRAS"] == "server,ray"
