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


def test_health_needs_no_token_and_names_version(http, rh_home):
    record = json.loads((rh_home / "clusters" / "local" / "server.json").read_text())
    body = http.get("/health").json()
    idle = body.pop("idle_seconds")
    assert body == {"status": "ok", "version": rh.__version__, "pid": record["pid"],
                    "cluster": "local", "calls_running": 0, "autostop_mins": None}
    assert isinstance(idle, float) and idle >= 0


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
    needs_token = {"error": {"kind": "auth",
                             "message": "this needs a bearer token (Authorization: Bearer ...)"}}
    r = http.put("/evil", json=spec)
    assert r.status_code == 401 and r.json() == needs_token
    assert "evil" not in local.keys()
    r = http.delete("/concat")
    assert r.status_code == 401 and r.json() == needs_token
    assert "concat" in local.keys()
    r = http.put("/evil", json=spec, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "this token is not valid for this cluster"
    assert "evil" not in local.keys()


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
    assert "result of type userfns.Opaque could not be serialized with json" in \
        r.json()["error"]["message"]


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


def test_run_logs_route_streams_text_while_the_run_goes_on(http, local, tmp_path):
    rh.function(userfns.print_then_wait).to(local)
    marker = tmp_path / "go"
    r = http.get(f"/print_then_wait/call?path={marker}&rh_async=1&rh_run_key=logged-run")
    assert r.status_code == 202 and r.json() == {"run_key": "logged-run"}
    text = ""
    with http.stream("GET", "/runs/logged-run/logs") as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
        for chunk in resp.iter_text():
            text += chunk
            if "to stderr" in text and not marker.exists():
                # The run is still waiting for the marker: these lines came while it ran.
                assert http.get("/runs/logged-run?rh_nowait=1").status_code == 202
                marker.write_text("go")
    assert text == "first line\nto stderr\nsecond line\n"
    assert http.get("/runs/logged-run").json() == "done"


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


NAME_RULE = "use 1-128 letters, digits, '_' or '-', starting with a letter or '_', and none of"


@pytest.mark.parametrize("path, shown", [
    ("runs", "'runs'"),              # reserved: a route of its own
    ("health", "'health'"),
    ("auth", "'auth'"),
    ("%2e%2e", "'..'"),              # the server decodes it: a parent folder is no name
    ("a%20b", "'a b'"),
    ("1abc", "'1abc'"),              # must start with a letter or '_'
    ("a.b", "'a.b'"),
    ("x" * 129, "'" + "x" * 40),     # one over the limit; the message shows its start
])
def test_bad_names_are_400_and_say_why(local, path, shown):
    spec = {"kind": "function", "pointer": {"module": "userfns", "qualname": "add"}}
    r = local.client().http.put(f"/{path}", json=spec)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["kind"] == "bad_request"
    assert err["message"].startswith(f"bad name {shown}") and NAME_RULE in err["message"]
    assert "a b" not in local.keys() and ".." not in local.keys()


def test_longest_name_is_served(local):
    name = "n" * 128
    f = rh.function(userfns.add).to(local, name=name)
    assert f(1, 2) == 3 and name in local.keys()
    f.delete()


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


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/concat", 405),       # a served name without a method
    ("POST", "/keys", 405),
    ("PUT", "/", 404),
    ("GET", "/a/b/c", 404),
])
def test_unrouted_paths_answer_a_json_error(http, method, path, status):
    r = http.request(method, path)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert err["kind"] and err["message"]


def test_endpoint_is_the_url_curl_calls(local):
    f = rh.function(userfns.concat).to(local, name="concat_at_endpoint")
    url = f.endpoint()
    assert url == f"{local.client().info.base_url}/concat_at_endpoint"
    assert url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{url}/call", params={"a": "run", "b": "house"}).json() == "runhouse"
    assert httpx.post(f"{url}/call", json=["run", "house"]).json() == "runhouse"
    counter = rh.module(userfns.Counter).to(local)(16, name="counter_at_endpoint")
    url = counter.endpoint()
    assert url == f"{local.client().info.base_url}/counter_at_endpoint"
    assert httpx.get(f"{url}/incr", params={"by": 2}).json() == 18
    assert httpx.get(f"{url}/count").json() == 18
    assert counter.count == 18  # the same instance
