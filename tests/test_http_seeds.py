"""The HTTP call as Runhouse users wrote it: the /call/ prefix, ?serialization= for the answer,
and JSON answers holding numpy arrays, pandas frames and other common types. Real server, real
HTTP, curl's requests."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import userfns

import rh_core as rh
from rh_core.transport import wire


@pytest.fixture(scope="module")
def served(local):
    for fn in (userfns.np_array, userfns.frame, userfns.common_values):
        rh.function(fn).to(local)
    return local


def test_the_seeds_curl_example_works_as_written(served):
    url = served.client().info.base_url
    owner = served.client().http.headers["authorization"]
    r = httpx.post(f"{url}/call/np_array/call?serialization=pickle", content='{"args": [[1, 2]]}',
                   headers={"Content-Type": "application/json", "Authorization": owner})
    assert r.status_code == 200 and r.headers["content-type"] == wire.PICKLE_CT
    assert np.array_equal(wire.loads_pickle(r.content), np.array([2, 4]))


def test_json_answers_hold_numpy_and_pandas_in_their_natural_form(served):
    url = served.client().info.base_url
    assert httpx.post(f"{url}/call/np_array/call", json={"args": [[1, 2]]}).json() == [2, 4]
    assert httpx.get(f"{url}/frame/call?n=3").json() == [
        {"i": 0, "sq": 0}, {"i": 1, "sq": 1}, {"i": 2, "sq": 4}]
    assert httpx.get(f"{url}/common_values/call").json() == {
        "when": "2026-12-02", "tags": ["a", "b"], "raw": "aGk=", "point": {"x": 1, "y": 2},
        "id": "00000000-0000-0000-0000-000000000001", "mean": 0.5, "count": 3}


def test_serialization_chooses_the_answers_format(served):
    url = served.client().info.base_url
    r = httpx.get(f"{url}/np_array/call?values=[3]&serialization=json")
    assert r.json() == [6]
    r = httpx.get(f"{url}/np_array/call?values=[3]&serialization=yaml")
    assert r.status_code == 400 and "json or pickle" in r.json()["error"]["message"]
    r = httpx.get(f"{url}/call/np_array/call?values=[3]&serialization=pickle")
    assert np.array_equal(wire.loads_pickle(r.content), np.array([6]))


def test_a_function_named_call_is_refused_clearly(local):
    with pytest.raises(rh.ServerError, match="bad name 'call'"):
        rh.function(userfns.add).to(local, name="call")
