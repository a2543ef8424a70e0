"""A bounded fuzz run of the server's own OpenAPI document with schemathesis: whatever the
inputs, the server answers 4xx (or a result), never a 500 of its own, and keeps serving."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
import userfns
from hypothesis import HealthCheck, settings

import rh_core as rh
from rh_server.routes.openapi import openapi_document

schema = schemathesis.openapi.from_dict(openapi_document(rh.__version__))


@pytest.fixture(scope="module")
def target(rh_home):
    cluster = rh.cluster(name="fuzzed", provider="local", den_auth=True)
    rh.function(userfns.concat).to(cluster)
    rh.function(userfns.add).to(cluster)
    rh.module(userfns.Counter).to(cluster)(name="counter")
    yield cluster
    cluster.down()


def _own_500(response) -> bool:
    """A 500 from the server itself (not a user function's exception, which is reported as
    kind 'user' with the function's traceback)."""
    if response.status_code < 500:
        return False
    try:
        return response.json()["error"]["kind"] != "user"
    except (ValueError, KeyError, TypeError):
        return True


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
@pytest.mark.parametrize("who", ["anonymous", "owner"])
def test_no_server_error(case, target, who):
    base = target.client().info.base_url
    headers = {}
    if who == "owner":
        headers["Authorization"] = target.client().http.headers["authorization"]
    response = case.call(base_url=base, headers=headers, timeout=30)
    assert not _own_500(response), (case.method, case.formatted_path, response.text[:500])


def test_server_still_serves_after_fuzzing(target):
    owner = {"Authorization": target.client().http.headers["authorization"]}
    r = httpx.get(f"{target.client().info.base_url}/health")
    assert r.status_code == 200
    r = httpx.get(f"{target.client().info.base_url}/keys", headers=owner)
    assert r.status_code == 200
