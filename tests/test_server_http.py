"""The server over real HTTP, as curl and other non-Python callers see it."""

from __future__ import annotations

import json

import httpx
import pytest
import userfns

import rh_core as rh
from rh_core.transport import wire


@pytest.fixture(scope="module")
def http(local):
    rh.function(userfns.concat).to(local)
    rh.function(userfns.not_json).to(local)
    rh.function(userfns.count_up).to(local)
    with httpx.Client(base_url=local.client().info.base_url, timeout=30) as c:
        yield c


def test_curl_style_get_call(http):
    r = http.get("/concat/call", params={"a": "run", "b": "house"})
    assert r.status_code == 200 and r.json() == "runhouse"


def test_query_values_are_json_when_they_parse(http):
    assert http.get("/concat/call?a=1&b=2").json() == 3
    assert http.get("/concat/call?a=[1]&b=[2]").json() == [1, 2]


def test_post_json_forms(http):
    assert http.post("/concat/call", json={"args": ["a", "b"]}).json() == "ab"
    assert http.post("/concat/call", json={"a": "x", "b": "y"}).json() == "xy"
    assert http.post("/concat/call", json=["p", "q"]).json() == "pq"


def test_health_needs_no_token_and_names_version(http):
    body = http.get("/health").json()
    assert body["status"] == "ok" and body["version"] == rh.__version__


def test_unknown_function_is_404_naming_it(http):
    r = http.get("/nosuchfn/call")
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["kind"] == "not_found" and "'nosuchfn'" in err["message"]
    assert "concat" in err["message"]  # lists what is served


def test_unknown_method_is_404_naming_it(http):
    r = http.get("/concat/frobnicate")
    assert r.status_code == 404
    assert "'frobnicate'" in r.json()["error"]["message"]


def test_malformed_json_is_400(http):
    r = http.post("/concat/call", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]


def test_unknown_serialization_is_400(http):
    r = http.post("/concat/call", content=b"abc", headers={"Content-Type": "application/x-yaml"})
    assert r.status_code == 400
    assert "unknown serialization 'application/x-yaml'" in r.json()["error"]["message"]


def test_pickle_from_unauthenticated_caller_is_refused(http):
    body = wire.joined(wire.dumps_pickle((("a", "b"), {})))
    r = http.post("/concat/call", content=body, headers={"Content-Type": wire.PICKLE_CT})
    assert r.status_code == 401 and "pickled arguments" in r.json()["error"]["message"]


def test_writes_need_the_owner_token(http, local):
    spec = {"kind": "function", "pointer": {"module": "os", "qualname": "system"}}
    r = http.put("/evil", json=spec)
    assert r.status_code == 401
    assert "evil" not in local.keys()
    assert http.delete("/concat").status_code == 401
    assert "concat" in local.keys()
    r = http.put("/evil", json=spec, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403


def test_remote_exception_as_json_500_with_traceback(http, local):
    r = http.get("/concat/call?a=1&b=x")
    assert r.status_code == 500
    err = r.json()["error"]
    assert err["type"] == "TypeError" and "unsupported operand" in err["message"]
    assert "userfns.py" in err["traceback"]
    assert "exc_pickle" not in err  # no pickles for anonymous callers


def test_result_that_is_not_json_names_its_type(http):
    r = http.get("/not_json/call")
    assert r.status_code == 500
    assert "result of type set could not be serialized with json" in r.json()["error"]["message"]


def test_generator_as_json_list_and_as_ndjson_stream(http):
    assert http.get("/count_up/call?n=3").json() == [0, 1, 2]
    r = http.get("/count_up/call?n=2&rh_stream=1")
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert lines == [{"item": 0}, {"item": 1}, {"result": None}]


def test_async_run_via_http_and_fetch_by_key(http, local):
    r = http.get("/concat/call?a=x&b=y&rh_async=1&rh_run_key=my-run-1")
    assert r.status_code == 202 and r.json() == {"run_key": "my-run-1"}
    assert http.get("/runs/my-run-1").json() == "xy"
    assert http.delete("/runs/my-run-1").status_code == 401  # deleting needs the owner token
    local.client().delete_run("my-run-1")
    r = http.get("/runs/my-run-1")
    assert r.status_code == 404 and "deleted" in r.json()["error"]["message"]


def test_run_logs_route_streams_text(http, local):
    rh.function(userfns.print_then_wait).to(local)
    import tempfile
    from pathlib import Path

    marker = Path(tempfile.mkdtemp()) / "m"
    marker.write_text("ready")
    r = http.get(f"/print_then_wait/call?path={marker}&rh_async=1&rh_run_key=logged-run")
    assert r.status_code == 202
    assert http.get("/runs/logged-run").json() == "done"
    text = http.get("/runs/logged-run/logs").text
    assert "first line" in text and "second line" in text


def test_keys_status_and_openapi(http, local):
    assert "concat" in http.get("/keys").json()["keys"]
    status = local.status()
    assert status["cluster"] == "local" and status["version"] == rh.__version__
    assert status["uptime_seconds"] > 0
    base = status["envs"]["base"]
    assert base["workers"][0]["alive"] and base["workers"][0]["pid"]
    assert "concat" in status["resources"]
    doc = http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/{name}/{method}" in doc["paths"]


def test_bad_names_are_400(local):
    client = local.client()
    spec = {"kind": "function", "pointer": {"module": "userfns", "qualname": "add"}}
    for bad in ["runs", "..", "a b", "x" * 200]:
        r = client.http.put(f"/{bad}", json=spec)
        assert r.status_code in (400, 404, 405), (bad, r.status_code)
        assert r.status_code != 500


def test_delete_stops_serving(local):
    f = rh.function(userfns.add).to(local, name="to_delete")
    assert f(1, 1) == 2
    f.delete()
    with pytest.raises(rh.RemoteFunctionNotFound, match="'to_delete'"):
        f(1, 1)


def test_invalid_token_is_refused_even_on_read_routes(http):
    r = http.get("/keys", headers={"Authorization": "Bearer not-the-token"})
    assert r.status_code == 403 and "not valid for this cluster" in r.json()["error"]["message"]
    r = http.get("/keys", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and "malformed" in r.json()["error"]["message"]


def test_bad_map_offsets_are_400(local):
    body = wire.joined(wire.pack_parts([wire.joined(wire.dumps_pickle([((1,), {})]))]))
    r = local.client().http.post("/concat/call?rh_map=1&rh_offsets=nope", content=body,
                                 headers={"Content-Type": wire.PICKLE_CT})
    assert r.status_code == 400 and "rh_offsets" in r.json()["error"]["message"]
