"""Tokens on a real server with den_auth: who may do what, on every route, with no side effects."""

from __future__ import annotations

import json

import httpx
import pytest
import userfns

import rh_core as rh
from rh_core import wire


@pytest.fixture(scope="module")
def secure(rh_home):
    """A local cluster with den_auth on, serving concat and add; stopped by PID at the end."""
    cluster = rh.cluster(name="secure", provider="local", den_auth=True)
    rh.function(userfns.concat).to(cluster)
    rh.function(userfns.add).to(cluster)
    yield cluster
    cluster.down()


@pytest.fixture
def url(secure):
    return secure.client().info.base_url


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_curl_with_a_read_token(secure, url):
    token = secure.grant("alice", "read")
    r = httpx.get(f"{url}/concat/call?a=run&b=house", headers=_bearer(token))
    assert r.status_code == 200 and r.json() == "runhouse"


def _routes(secure):
    """Every route of the server, with a request that would change something where it can."""
    handle = rh.function(userfns.add).to(secure).remote(1, 2)
    rh.get(handle)
    spec = {"kind": "function", "pointer": {"module": "userfns", "qualname": "concat"}}
    pickled = wire.joined(wire.dumps_pickle(((1, 2), {})))
    return [
        ("GET", "/status", {}),
        ("GET", "/keys", {}),
        ("GET", "/logs", {}),
        ("GET", "/openapi.json", {}),
        ("GET", "/runs", {}),
        ("GET", f"/runs/{handle.run_key}", {}),
        ("GET", f"/runs/{handle.run_key}/logs", {}),
        ("DELETE", f"/runs/{handle.run_key}", {}),
        ("GET", "/add/call?a=1&b=2", {}),
        ("POST", "/add/call", {"json": {"a": 1, "b": 2}}),
        ("POST", "/add/call", {"content": pickled,
                               "headers": {"Content-Type": wire.PICKLE_CT}}),
        ("PUT", "/intruder", {"json": spec}),
        ("DELETE", "/add", {}),
        ("POST", "/auth/tokens", {"json": {"user": "mallory", "access": "write"}}),
        ("GET", "/auth/tokens", {}),
        ("DELETE", "/auth/tokens/alice", {}),
    ]


WRITE_ROUTES = {("GET", "/logs"), ("PUT", "/intruder"), ("DELETE", "/add"),
                ("POST", "/auth/tokens"), ("GET", "/auth/tokens"), ("DELETE", "/auth/tokens/alice")}


def _state(secure):
    status = secure.status()
    return sorted(status["resources"]), status["runs"], len(secure.tokens())


@pytest.mark.parametrize("who", ["none", "malformed", "no_access", "read_on_write"])
def test_every_route_refuses_without_the_right_token(secure, url, who):
    other = secure.grant("bob", "read", ["concat"])  # valid, but not for 'add' or cluster routes
    reader = secure.grant("carol", "read")
    headers = {"none": {}, "malformed": {"Authorization": "Bearer"},
               "no_access": _bearer(other), "read_on_write": _bearer(reader)}[who]
    routes = _routes(secure)
    before = _state(secure)
    with httpx.Client(base_url=url, timeout=30) as http:
        for method, path, kw in routes:
            is_write = ((method, path.split("?")[0]) in WRITE_ROUTES
                        or "x-rh-pickle" in json.dumps(kw.get("headers", {})))
            if who == "read_on_write" and not is_write:
                continue  # a read token may read: only its writes must fail
            merged = {**kw.get("headers", {}), **headers}
            r = http.request(method, path, **{k: v for k, v in kw.items() if k != "headers"},
                             headers=merged)
            expected = {401} if who in ("none", "malformed") else {403}
            assert r.status_code in expected, (who, method, path, r.status_code, r.text)
            assert r.json()["error"]["kind"] == "auth"
    assert _state(secure) == before  # nothing changed
    assert httpx.get(f"{url}/health").status_code == 200  # health stays open


def test_read_token_cannot_send_pickle(secure, url):
    token = secure.grant("dave", "read")
    body = wire.joined(wire.dumps_pickle((("a", "b"), {})))
    r = httpx.post(f"{url}/concat/call", content=body,
                   headers={**_bearer(token), "Content-Type": wire.PICKLE_CT})
    assert r.status_code == 403 and "write access" in r.json()["error"]["message"]


def test_write_token_may_put_and_delete(secure, url):
    token = secure.grant("erin", "write")
    spec = {"kind": "function", "pointer": {"module": "userfns", "qualname": "echo",
                                            "root": str(userfns.__file__).rsplit("/", 1)[0]}}
    assert httpx.put(f"{url}/erins_echo", json=spec, headers=_bearer(token)).status_code == 200
    assert httpx.get(f"{url}/erins_echo/call?x=5", headers=_bearer(token)).json() == 5
    assert httpx.delete(f"{url}/erins_echo", headers=_bearer(token)).status_code == 200


def test_revoked_token_stops_working_at_once(secure, url):
    token = secure.grant("frank", "read")
    assert httpx.get(f"{url}/add/call?a=1&b=1", headers=_bearer(token)).status_code == 200
    assert secure.revoke("frank")
    assert httpx.get(f"{url}/add/call?a=1&b=1", headers=_bearer(token)).status_code == 403


def test_grants_survive_a_server_restart(secure, url):
    token = secure.grant("grace", "read", ["add"])
    secure.restart_server()
    new_url = secure.client().info.base_url
    assert httpx.get(f"{new_url}/add/call?a=2&b=2", headers=_bearer(token)).json() == 4
    assert httpx.get(f"{new_url}/concat/call?a=1&b=2", headers=_bearer(token)).status_code == 403


def test_a_cluster_token_opens_no_other_cluster(secure, own_cluster):
    own_cluster.up_if_not()
    own_owner = own_cluster.client().http.headers["authorization"]
    url = secure.client().info.base_url
    assert httpx.get(f"{url}/keys", headers={"Authorization": own_owner}).status_code == 403


def test_tokens_never_appear_in_logs_configs_or_status(secure, rh_home):
    token = secure.grant("heidi", "read")
    owner = secure.client().http.headers["authorization"].split()[1]
    httpx.get(f"{secure.client().info.base_url}/add/call?a=1&b=1", headers=_bearer(token))
    httpx.get(f"{secure.client().info.base_url}/keys", headers=_bearer("rht_wrong-token"))
    texts = [secure.logs(), json.dumps(secure.config()), json.dumps(secure.status()),
             json.dumps(secure.tokens())]
    texts += [p.read_text() for p in (rh_home / "clusters" / "secure").glob("*.json")]
    texts += [p.read_text() for p in (rh_home / "server" / "secure").rglob("*.json")]
    for text in texts:
        for secret in (token, owner, "rht_wrong-token"):
            assert secret not in text


def test_cli_token_commands(secure):
    import os
    import subprocess
    import sys

    run = lambda *a: subprocess.run([sys.executable, "-m", "rh_core.cli", "token", *a],  # noqa: E731
                                    capture_output=True, text=True, env=dict(os.environ),
                                    timeout=60)
    out = run("create", "ivan", "--cluster", "secure", "--access", "read", "-r", "add")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token.startswith("rht_")
    url = secure.client().info.base_url
    assert httpx.get(f"{url}/add/call?a=3&b=4", headers=_bearer(token)).json() == 7
    listed = json.loads(run("list", "--cluster", "secure").stdout)
    assert any(t["user"] == "ivan" and t["grants"] == {"add": "read"} for t in listed)
    assert "revoked" in run("revoke", "ivan", "--cluster", "secure").stdout
    assert httpx.get(f"{url}/add/call?a=3&b=4", headers=_bearer(token)).status_code == 403


@pytest.mark.parametrize("path", ["/..%2F..%2Fetc/call", "/a%0d%0aX-Injected:1/call",
                                  "/%2e%2e/call", "/con%00cat/call"])
def test_path_tricks_are_4xx(secure, url, path):
    owner = secure.client().http.headers["authorization"]
    r = httpx.get(url + path, headers={"Authorization": owner})
    assert 400 <= r.status_code < 500
    assert "X-Injected" not in r.headers


def test_huge_and_bad_bodies_are_4xx_and_the_server_keeps_serving(secure, url):
    owner = {"Authorization": secure.client().http.headers["authorization"]}
    r = httpx.post(f"{url}/add/call", content=b"[" * 5_000_000,
                   headers={**owner, "Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 400
    r = httpx.post(f"{url}/add/call", content=b"RHP5garbage",
                   headers={**owner, "Content-Type": wire.PICKLE_CT})
    assert r.status_code == 400 and "could not be decoded" in r.json()["error"]["message"]
    assert httpx.get(f"{url}/add/call?a=1&b=2", headers=owner).json() == 3
