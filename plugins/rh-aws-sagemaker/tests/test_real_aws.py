"""Real AWS: a SageMaker job, SSM, S3, IAM, CloudWatch. Nothing is stood in. Opt-in, because
it costs money (an ml.m5.large for a few minutes): it runs only with
``RH_SAGEMAKER_REAL_TESTS=1``, the AWS credentials of the environment the session started in,
``RH_SAGEMAKER_TEST_ROLE`` (a role SageMaker can assume, see docs/clusters/sagemaker.md), the
AWS CLI v2 and the session-manager-plugin, and Python 3.11 (the default image's). Otherwise it
says in the summary, as a warning, that it did not run; it never passes silently."""

from __future__ import annotations

import os
import warnings

import smfns
import userfns
from conftest import REAL_AWS_ENV

import rh_core as rh


def test_real_sagemaker_cluster(monkeypatch):
    role = os.environ.get("RH_SAGEMAKER_TEST_ROLE")
    if os.environ.get("RH_SAGEMAKER_REAL_TESTS") != "1" or not role:
        warnings.warn("test_real_sagemaker_cluster is not run: it needs real AWS "
                      "(RH_SAGEMAKER_REAL_TESTS=1 and RH_SAGEMAKER_TEST_ROLE=<role>; it costs "
                      "an ml.m5.large for a few minutes)", stacklevel=1)
        return
    for k, v in REAL_AWS_ENV.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    c = rh.sagemaker_cluster(name="rh-real-test", instance_type="ml.m5.large", role=role,
                             autostop_mins=10, max_runtime_hours=1)
    try:
        assert rh.function(userfns.add).to(c)(1, 2) == 3
        assert rh.function(smfns.chatter).to(c)(2, stream_logs=True) == 2
        assert c.status()["sagemaker"]["status"] == "InProgress"
        assert "rh-node: rh server of rh-real-test answering" in c.logs()
    finally:
        c.down()
    assert c.status()["sagemaker"]["status"] in ("Stopped", "Completed")
