"""The claims of docs/security.md about what is exposed and who may do what, one test each,
named after the claim, on real local servers over real HTTP. Token storage, expiry, limits and
the access log are in test_limits.py; the route-by-caller matrix is test_auth_matrix.py; TLS
is test_tls.py."""

from __future__ import annotations

import json
from pathlib import Path

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


def _pid(cluster, rh_home) -> int:
    return json.loads((rh_home / "clusters" / cluster.name / "server.json").read_text())["pid"]


# ------------------------------------------------------------------------ what is exposed


def test_the_server_listens_on_loopback_unless_told_otherwise(public, rh_home):
    record = json.loads((rh_home / "clusters" / "public" / "server.json").read_text())
    assert record["host"] == "127.0.0.1"
    port = f"{record['port']:04X}"
    listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                 if line.split()[1].endswith(f":{port}") and line.split()[3] == "0A"]
    assert listening == [f"0100007F:{port}"]  # 127.0.0.1 only, no other interface


# ------------------------------------------------------------------------ the owner token


def test_the_owner_token_is_never_on_a_command_line_nor_in_the_servers_environment(secure, rh_home):
    owner = _owner(secure)["Authorization"].split()[1]
    pid = _pid(secure, rh_home)
    assert owner.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"RH_SERVER_TOKEN" not in environ and owner.encode() not in environ
    for worker in secure.status()["envs"]["base"]["workers"]:
        assert owner.encode() not in Path(f"/proc/{worker['pid']}/environ").read_bytes()


def test_code_on_the_cluster_has_a_worker_token_that_cannot_manage_tokens(secure):
    """rh.here works from user code with a token of the workers' own: write access, but not
    the owner's routes, and not the owner token."""
    check = rh.function(userfns.worker_token_reach).to(secure)
    status, here_uses_it = check(_url(secure))
    assert status == 403 and here_uses_it is True


def test_a_clusters_owner_token_opens_no_other_cluster(secure, own_cluster):
    own_cluster.up_if_not()
    r = httpx.get(f"{_url(secure)}/keys", headers=_owner(own_cluster))
    assert r.status_code == 403 and "not valid for this cluster" in r.json()["error"]["message"]


# ------------------------------------------------------------------------ who may do what


def test_a_read_token_calls_with_json_like_curl(secure):
    token = secure.grant("alice", "read")
    r = httpx.get(f"{_url(secure)}/concat/call?a=run&b=house", headers=_bearer(token))
    assert r.status_code == 200 and r.json() == "runhouse"


def test_a_token_limited_to_names_reaches_those_names_and_their_runs_only(secure):
    url = _url(secure)
    run = rh.function(userfns.add).to(secure).remote(5, 5)
    assert rh.get(run) == 10
    only_add = secure.grant("ken", "read", ["add"])
    assert httpx.get(f"{url}/add/call?a=2&b=2", headers=_bearer(only_add)).json() == 4
    r = httpx.get(f"{url}/runs/{run.run_key}", headers=_bearer(only_add))
    assert r.status_code == 200 and wire.loads_pickle(r.content) == 10
    r = httpx.post(f"{url}/add/call?rh_async=1&rh_run_key=kens-run", json=[1, 1],
                   headers=_bearer(only_add))
    assert r.status_code == 202
    assert httpx.get(f"{url}/runs/kens-run", headers=_bearer(only_add)).json() == 2
    for path in ("/concat/call?a=1&b=2", "/status", "/keys", "/runs", "/openapi.json"):
        r = httpx.get(url + path, headers=_bearer(only_add))
        assert r.status_code == 403, path
        assert "may not read" in r.json()["error"]["message"]
    only_concat = secure.grant("judy", "read", ["concat"])
    assert httpx.get(f"{url}/runs/{run.run_key}", headers=_bearer(only_concat)).status_code == 403
    # an unknown run key tells a narrow token nothing about which keys exist
    assert httpx.get(f"{url}/runs/no-such-run", headers=_bearer(only_add)).status_code == 403


def test_read_on_every_name_reads_every_run_the_owners_included(secure):
    owners_run = rh.function(userfns.concat).to(secure).remote("own", "er")
    rh.get(owners_run)
    reader = secure.grant("mallory", "read")
    url = _url(secure)
    listed = httpx.get(f"{url}/runs", headers=_bearer(reader)).json()["runs"]
    assert owners_run.run_key in [r["run_key"] for r in listed]
    r = httpx.get(f"{url}/runs/{owners_run.run_key}", headers=_bearer(reader))
    assert wire.loads_pickle(r.content) == "owner"


def test_without_den_auth_anonymous_callers_may_read_but_not_write(public):
    url = _url(public)
    assert httpx.get(f"{url}/add/call?a=1&b=2").json() == 3
    assert httpx.post(f"{url}/add/call", json=[1, 2]).json() == 3
    for path in ("/status", "/keys", "/runs", "/openapi.json"):
        assert httpx.get(url + path).status_code == 200, path
    pickled = wire.joined(wire.dumps_pickle(((1, 2), {})))
    refused = [httpx.post(f"{url}/add/call", content=pickled,
                          headers={"Content-Type": wire.PICKLE_CT}),
               httpx.put(f"{url}/mine", json={"kind": "function", "code": "x"}),
               httpx.delete(f"{url}/add"), httpx.get(f"{url}/logs"),
               httpx.get(f"{url}/auth/tokens")]
    assert [r.status_code for r in refused] == [401] * 5
    assert "add" in public.keys()


def test_with_den_auth_every_route_but_health_needs_a_token(secure):
    url = _url(secure)
    assert httpx.get(f"{url}/health").status_code == 200
    for path in ("/add/call?a=1&b=2", "/status", "/keys", "/runs", "/openapi.json", "/logs"):
        r = httpx.get(url + path)
        assert r.status_code == 401 and r.json()["error"]["kind"] == "auth", path


def test_a_valid_token_never_gets_less_than_no_token(public):
    narrow = public.grant("lena", "read", ["concat"])
    url = _url(public)
    assert httpx.get(f"{url}/add/call?a=1&b=1", headers=_bearer(narrow)).json() == 2
    assert httpx.get(f"{url}/status", headers=_bearer(narrow)).status_code == 200


def test_an_unknown_token_is_refused_even_where_no_token_may_read(public):
    url = _url(public)
    assert httpx.get(f"{url}/keys").status_code == 200
    r = httpx.get(f"{url}/keys", headers=_bearer("rht_never-made-here"))
    assert r.status_code == 403 and "not valid for this cluster" in r.json()["error"]["message"]
    r = httpx.get(f"{url}/keys", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and "malformed" in r.json()["error"]["message"]


def test_pickled_arguments_need_write_access(secure):
    body = wire.joined(wire.dumps_pickle((("a", "b"), {})))
    reader = secure.grant("dave", "read")
    writer = secure.grant("erin", "write", ["concat"])
    ctype = {"Content-Type": wire.PICKLE_CT}
    r = httpx.post(f"{_url(secure)}/concat/call", content=body, headers={**_bearer(reader), **ctype})
    assert r.status_code == 403 and "write access" in r.json()["error"]["message"]
    r = httpx.post(f"{_url(secure)}/concat/call", content=body, headers={**_bearer(writer), **ctype})
    assert r.status_code == 200 and wire.loads_pickle(r.content) == "ab"


def test_a_write_token_may_serve_and_delete_code(secure):
    token = secure.grant("erin", "write")
    url = _url(secure)
    spec = {"kind": "function", "pointer": {"module": "userfns", "qualname": "echo",
                                            "root": str(Path(userfns.__file__).parent)}}
    assert httpx.put(f"{url}/erins_echo", json=spec, headers=_bearer(token)).status_code == 200
    assert httpx.get(f"{url}/erins_echo/call?x=5", headers=_bearer(token)).json() == 5
    assert httpx.delete(f"{url}/erins_echo", headers=_bearer(token)).status_code == 200
    assert "erins_echo" not in secure.keys()


def test_a_pickled_exception_goes_only_to_pickle_callers(public):
    r = httpx.get(f"{_url(public)}/boom/call?x=1")
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["type"] == "ValueError" and "exc_pickle" not in error
    with pytest.raises(ValueError):  # the owner's Python client gets the exception itself
        rh.function(userfns.boom).to(public)(1)


def test_a_revoked_token_is_refused_from_the_next_request(secure):
    token = secure.grant("frank", "read")
    url = _url(secure)
    assert httpx.get(f"{url}/add/call?a=1&b=1", headers=_bearer(token)).status_code == 200
    assert secure.revoke("frank")
    assert httpx.get(f"{url}/add/call?a=1&b=1", headers=_bearer(token)).status_code == 403


def test_grants_survive_a_server_restart(own_cluster):
    rh.function(userfns.add).to(own_cluster)
    rh.function(userfns.concat).to(own_cluster)
    token = own_cluster.grant("grace", "read", ["add"])
    own_cluster.restart_server()
    url = _url(own_cluster)
    assert httpx.get(f"{url}/add/call?a=2&b=2", headers=_bearer(token)).json() == 4
    r = httpx.get(f"{url}/concat/call?a=1&b=2", headers=_bearer(token))
    assert r.json() == 3  # concat is public on this cluster: the narrow token reads it too
    assert any(t["user"] == "grace" for t in own_cluster.tokens())



def test_every_test_named_in_security_md_exists():
    """docs/security.md lists the test of each claim; each one it names is a test here."""
    import re

    root = Path(__file__).parent.parent
    named = set(re.findall(r"`(test_\w+)`", (root / "docs" / "security.md").read_text()))
    defined = set()
    for path in [*root.glob("tests/test_*.py"), *root.glob("plugins/*/tests/test_*.py")]:
        defined |= set(re.findall(r"^def (test_\w+)\(", path.read_text(), re.M))
    assert named and not named - defined, sorted(named - defined)
