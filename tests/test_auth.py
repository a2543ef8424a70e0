"""Tokens on a real server with den_auth: who may do what, on every route, with no side effects."""

from __future__ import annotations

import json

import httpx
import pytest
import userfns

import rh_core as rh
from rh_core.transport import wire


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


def test_running_server_with_other_settings_is_not_silently_reused(own_cluster):
    rh.function(userfns.add).to(own_cluster)  # started without den_auth
    asking = rh.cluster(name=own_cluster.name, provider="local", den_auth=True)
    with pytest.raises(rh.ConfigError, match="already runs with other settings .*den_auth: "
                                             "running False, asked True.*restart"):
        asking.up_if_not()
    asking.restart_server()
    assert asking.status()["den_auth"] is True
    assert httpx.get(f"{asking.client().info.base_url}/keys").status_code == 401


def test_runs_are_guarded_by_their_functions_grants(secure, url):
    mine = rh.function(userfns.add).to(secure).remote(5, 5)
    rh.get(mine)
    only_concat = secure.grant("judy", "read", ["concat"])
    only_add = secure.grant("ken", "read", ["add"])
    r = httpx.get(f"{url}/runs/{mine.run_key}", headers=_bearer(only_add))
    assert r.status_code == 200 and wire.loads_pickle(r.content) == 10
    assert httpx.get(f"{url}/runs/{mine.run_key}",
                     headers=_bearer(only_concat)).status_code == 403
    r = httpx.get(f"{url}/runs/no-such-run", headers=_bearer(only_add))
    assert r.status_code == 403  # unknown keys tell a narrow token nothing


def test_a_narrow_token_never_gets_less_than_no_token(own_cluster):
    rh.function(userfns.add).to(own_cluster)
    rh.function(userfns.concat).to(own_cluster)
    narrow = own_cluster.grant("lena", "read", ["concat"])
    url = own_cluster.client().info.base_url
    assert httpx.get(f"{url}/add/call?a=1&b=1").json() == 2  # public without den_auth
    assert httpx.get(f"{url}/add/call?a=1&b=1", headers=_bearer(narrow)).json() == 2
    assert httpx.get(f"{url}/status", headers=_bearer(narrow)).status_code == 200


def test_grant_resources_must_be_a_list(secure, url):
    owner = {"Authorization": secure.client().http.headers["authorization"]}
    r = httpx.post(f"{url}/auth/tokens", json={"user": "x", "resources": "concat"},
                   headers=owner)
    assert r.status_code == 400 and "must be a list" in r.json()["error"]["message"]


def test_anonymous_bodies_are_limited_before_they_are_read(own_cluster):
    import socket

    rh.function(userfns.add).to(own_cluster)
    port = httpx.URL(own_cluster.client().info.base_url).port
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /add/call HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100000000\r\n\r\n")
        s.settimeout(10)
        answer = ""
        while "MiB" not in answer:
            chunk = s.recv(4096).decode()
            if not chunk:
                break
            answer += chunk
    assert answer.startswith("HTTP/1.1 413") and "64 MiB" in answer


def test_caddy_without_its_plugin_says_what_to_install(own_cluster, monkeypatch):
    """The plugin's absence is simulated at the library boundary (no entry points)."""
    import importlib.metadata

    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: [])
    c = rh.cluster(name="no-caddy", provider="local", use_caddy=True, server_port=18443)
    with pytest.raises(rh.ConfigError, match="needs the rh-caddy plugin"):
        c.up_if_not()
