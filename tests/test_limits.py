"""The claims of docs/security.md about tokens (storage, expiry, the rh token commands), limits
(body sizes, the brake on invalid tokens), the access log and what never appears anywhere, one
test each, named after the claim, on real local servers over real HTTP."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time

import httpx
import pytest
import userfns

import rh_core as rh
from rh_core.transport import wire


def _url(cluster) -> str:
    return cluster.client().info.base_url


def _owner(cluster) -> dict:
    return {"Authorization": cluster.client().http.headers["authorization"]}


def _bearer(token) -> dict:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------------ token storage


def test_tokens_json_keeps_only_hashes_and_is_private(secure, rh_home):
    token = secure.grant("olga", "read", ["add"])
    assert token.startswith("rht_") and len(token) >= 4 + 43
    path = rh_home / "server" / "secure" / "tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert token not in text and "olga" in text
    listed = [t for t in secure.tokens() if t["user"] == "olga"]
    assert listed and "hash" not in listed[0] and listed[0]["grants"] == {"add": "read"}


def test_an_expired_token_is_refused_and_listed_as_expired(secure):
    token = secure.grant("pavel", "read", expires_in=1.0)
    url = _url(secure)
    assert httpx.get(f"{url}/add/call?a=1&b=1", headers=_bearer(token)).json() == 2
    entry = next(t for t in secure.tokens() if t["user"] == "pavel")
    assert entry["expires"] > time.time() - 5 and entry["expired"] is False
    deadline = time.monotonic() + 10
    while time.time() < entry["expires"] and time.monotonic() < deadline:
        time.sleep(0.05)  # waiting for the clock to pass a time, not for a process
    r = httpx.get(f"{url}/add/call?a=1&b=1", headers=_bearer(token))
    assert r.status_code == 403 and "expired at" in r.json()["error"]["message"]
    assert next(t for t in secure.tokens() if t["user"] == "pavel")["expired"] is True
    with pytest.raises(rh.ConfigError, match="like '30d'"):
        secure.grant("pavel", "read", expires_in="soon")


def _rh(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "rh_core.cli", *args], capture_output=True,
                          text=True, env=dict(os.environ), timeout=timeout)


def test_rh_token_commands_create_list_and_revoke(secure):
    out = _rh("token", "create", "ivan", "--cluster", "secure", "--access", "read", "-r", "add",
              "--expires", "30d")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip()
    assert token.startswith("rht_")
    url = _url(secure)
    assert httpx.get(f"{url}/add/call?a=3&b=4", headers=_bearer(token)).json() == 7
    listed = json.loads(_rh("token", "list", "--cluster", "secure", "--json").stdout)
    ivan = next(t for t in listed if t["user"] == "ivan")
    assert ivan["grants"] == {"add": "read"}
    assert 29 * 86400 < ivan["expires"] - time.time() <= 30 * 86400
    table = _rh("token", "list", "--cluster", "secure").stdout
    assert "ivan" in table and "read on add" in table and "never" in table  # others never expire
    assert "revoked" in _rh("token", "revoke", "ivan", "--cluster", "secure").stdout
    assert httpx.get(f"{url}/add/call?a=3&b=4", headers=_bearer(token)).status_code == 403


# ------------------------------------------------------------------------ limits


def test_anonymous_bodies_over_64_mib_are_refused_before_they_are_read(public):
    port = httpx.URL(_url(public)).port
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
    assert answer.startswith("HTTP/1.1 413") and "limit of 64 MiB" in answer


def test_bodies_over_max_body_mb_are_refused_with_413(own_cluster):
    c = rh.cluster(name=own_cluster.name, provider="local", max_body_mb=1)
    f = rh.function(userfns.echo).to(c)
    assert f(b"x" * 500_000) == b"x" * 500_000
    with pytest.raises(rh.ServerError, match="over this server's limit of 1 MiB") as e:
        f(b"x" * 2_000_000)
    assert e.value.status == 413

    def chunks():  # a body sent without Content-Length is counted while it is read
        for _ in range(40):
            yield b"[" * 65536

    r = httpx.post(f"{_url(c)}/echo/call", content=chunks(), headers={
        **_owner(c), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["kind"] == "too_large"
    assert f("still serving") == "still serving"


def test_an_address_sending_invalid_tokens_gets_429_for_the_rest_of_the_minute(rh_home, monkeypatch):
    monkeypatch.setenv("RH_AUTH_FAILURES_PER_MINUTE", "5")
    c = rh.cluster(name="braked", provider="local", den_auth=True)
    try:
        rh.function(userfns.add).to(c)
        url = _url(c)
        granted = c.grant("quinn", "read")
        codes = [httpx.get(f"{url}/keys", headers=_bearer(f"rht_guess{i}")).status_code
                 for i in range(7)]
        assert codes == [403] * 5 + [429] * 2
        r = httpx.get(f"{url}/add/call?a=1&b=1", headers=_bearer(granted))
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 61
        assert "try again in" in r.json()["error"]["message"]
        assert httpx.get(f"{url}/add/call?a=1&b=1", headers=_owner(c)).json() == 2  # the owner
        assert httpx.get(f"{url}/health").status_code == 200
    finally:
        c.down()


# ------------------------------------------------------------------------ the access log


def test_the_access_log_says_who_called_what_and_never_a_secret(secure, rh_home):
    url = _url(secure)
    token = secure.grant("rita", "read", ["concat"])
    httpx.get(f"{url}/concat/call?a=sekrit-arg&b=z", headers=_bearer(token))
    httpx.post(f"{url}/concat/call", json=["sekrit-body", "1"], headers=_bearer(token))
    httpx.get(f"{url}/keys", headers=_bearer("rht_not-a-real-one"))
    httpx.get(f"{url}/status")
    rh.function(userfns.add).to(secure, name="add_for_log")(1, 2)  # the last request
    log = rh_home / "server" / "secure" / "access.log"
    deadline = time.monotonic() + 10  # the server flushes its buffer every second
    entries: list = []
    while time.monotonic() < deadline:
        entries = secure.access_log()
        if any(e["path"] == "/add_for_log/call" for e in entries):
            break
        time.sleep(0.1)
    rita = [e for e in entries if e.get("caller") == "rita"]
    assert [(e["method"], e["path"], e["status"]) for e in rita[-2:]] == [
        ("GET", "/concat/call", 200), ("POST", "/concat/call", 200)]
    assert rita[-1]["token_id"] and rita[-1]["client"] == "127.0.0.1" and rita[-1]["ms"] >= 0
    assert any(e["path"] == "/keys" and e["status"] == 403 and e["caller"] == "anonymous"
               for e in entries)
    assert any(e["path"] == "/status" and e["status"] == 401 for e in entries)
    assert any(e["path"] == "/add_for_log/call" and e["caller"] == "owner" for e in entries)
    text = log.read_text()
    owner = _owner(secure)["Authorization"].split()[1]
    for secret in ("sekrit-arg", "sekrit-body", token, owner, "rht_not-a-real-one"):
        assert secret not in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    out = _rh("logs", "secure", "--access")
    assert out.returncode == 0 and '"caller":"rita"' in out.stdout


# ------------------------------------------------------------------------ what never appears


def test_tokens_never_appear_in_logs_configs_or_status(secure, rh_home):
    token = secure.grant("heidi", "read")
    owner = _owner(secure)["Authorization"].split()[1]
    httpx.get(f"{_url(secure)}/add/call?a=1&b=1", headers=_bearer(token))
    httpx.get(f"{_url(secure)}/keys", headers=_bearer("rht_wrong-token"))
    texts = [secure.logs(), json.dumps(secure.config()), json.dumps(secure.status()),
             json.dumps(secure.tokens())]
    texts += [p.read_text() for p in (rh_home / "clusters" / "secure").glob("*.json")]
    texts += [p.read_text() for p in (rh_home / "server" / "secure").rglob("*")
              if p.is_file()]
    for text in texts:
        for secret in (token, owner, "rht_wrong-token"):
            assert secret not in text


def test_status_shows_env_var_names_never_values(public):
    getenv = rh.function(userfns.getenv).to(public, env=rh.env(
        name="withvars", env_vars={"API_KEY": "sk-sekrit"}))
    assert getenv("API_KEY") == "sk-sekrit"
    env = public.status()["envs"]["withvars"]
    assert env["env_var_names"] == ["API_KEY"]
    assert "sk-sekrit" not in json.dumps(public.status())


# ------------------------------------------------------------------------ robustness


@pytest.mark.parametrize("path", ["/..%2F..%2Fetc/call", "/a%0d%0aX-Injected:1/call",
                                  "/%2e%2e/call", "/con%00cat/call"])
def test_path_tricks_are_4xx(secure, path):
    r = httpx.get(_url(secure) + path, headers=_owner(secure))
    assert r.status_code in (400, 404)
    assert r.json()["error"]["kind"] in ("bad_request", "not_found")
    assert "X-Injected" not in r.headers


def test_huge_and_bad_bodies_are_4xx_and_the_server_keeps_serving(secure):
    url = _url(secure)
    r = httpx.post(f"{url}/add/call", content=b"[" * 5_000_000,
                   headers={**_owner(secure), "Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 400
    r = httpx.post(f"{url}/add/call", content=b"RHP5garbage",
                   headers={**_owner(secure), "Content-Type": wire.PICKLE_CT})
    assert r.status_code == 400 and "could not be decoded" in r.json()["error"]["message"]
    assert httpx.get(f"{url}/add/call?a=1&b=2", headers=_owner(secure)).json() == 3


def test_a_running_server_with_other_settings_is_not_silently_reused(own_cluster):
    rh.function(userfns.add).to(own_cluster)  # started without den_auth
    asking = rh.cluster(name=own_cluster.name, provider="local", den_auth=True)
    with pytest.raises(rh.ConfigError, match="already runs with other settings .*den_auth: "
                                             "running False, asked True.*restart"):
        asking.up_if_not()
    asking.restart_server()
    assert asking.status()["den_auth"] is True
    assert httpx.get(f"{_url(asking)}/keys").status_code == 401


def test_grant_resources_must_be_a_list(secure):
    r = httpx.post(f"{_url(secure)}/auth/tokens", json={"user": "x", "resources": "concat"},
                   headers=_owner(secure))
    assert r.status_code == 400 and "must be a list" in r.json()["error"]["message"]


def test_caddy_without_its_plugin_says_what_to_install(rh_home):
    """The core's test env does not install rh-caddy (its own tox env does)."""
    with pytest.raises(ImportError):
        import rh_caddy  # noqa: F401
    c = rh.cluster(name="no-caddy", provider="local", use_caddy=True, server_port=18443)
    with pytest.raises(rh.ConfigError, match="needs the rh-caddy plugin"):
        c.up_if_not()
