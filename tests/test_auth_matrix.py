"""Every route of the server x every kind of caller, on a cluster with and without den_auth.

The routes come from the app itself: a route without a rule in :data:`RULES` fails
``test_every_route_has_a_rule``, so no route ships without its access being decided and tested.
Requests go over real HTTP to real local servers; a request that is refused must change nothing.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path

import httpx
import pytest
import userfns

import rh_core as rh
from rh_core.plugin import ServerContext
from rh_core.plugin.registry import get_plugin_manager
from rh_core.transport import archive, wire
from rh_server.app import build_app

#: (method, route path) -> (level, on): who may use it. ``on`` is ``*`` (the cluster-wide
#: grant) or ``name`` (the function the route names, or whose run it is). ``pickle`` is the
#: call route with a pickled body.
RULES = {
    ("GET", "/health"): ("none", None),
    ("GET", "/logs"): ("write", "*"),
    # The owner's answer is 409 here: no supervisor runs these servers (tests/test_server_restart.py).
    ("POST", "/restart"): ("owner_unsupervised", None),
    ("POST", "/auth/tokens"): ("owner", None),
    ("GET", "/auth/tokens"): ("owner", None),
    ("DELETE", "/auth/tokens/{who}"): ("owner", None),
    ("GET", "/runs"): ("read", "*"),
    ("GET", "/runs/{key}"): ("read", "name"),
    ("DELETE", "/runs/{key}"): ("write", "name"),
    ("GET", "/runs/{key}/logs"): ("read", "name"),
    ("POST", "/runs/{key}/cancel"): ("write", "name"),
    ("GET", "/{name}/{method}"): ("read", "name"),
    ("POST", "/{name}/{method}"): ("read", "name"),
    ("PICKLE", "/{name}/{method}"): ("write", "name"),
    ("GET", "/call/{name}/{method}"): ("read", "name"),  # Runhouse's form of the call route
    ("POST", "/call/{name}/{method}"): ("read", "name"),
    ("GET", "/keys"): ("read", "*"),
    ("GET", "/status"): ("read", "*"),
    ("PUT", "/{name}"): ("write", "name"),
    ("DELETE", "/{name}"): ("write", "name"),
    ("PATCH", "/{name}"): ("write", "name"),  # a rename: write on the old and the new name
    ("GET", "/openapi.json"): ("read", "*"),
    ("GET", "/objects"): ("read", "*"),
    ("POST", "/commands"): ("write", "*"),
    ("PUT", "/secrets/{name}"): ("write", "*"),
    ("GET", "/objects/{key}"): ("read", "name"),
    ("PUT", "/objects/{key}"): ("write", "name"),
    ("DELETE", "/objects/{key}"): ("write", "name"),
    ("GET", "/folder/tar"): ("write", "*"),  # any file of the server's user: as much as /commands
    ("PUT", "/folder/tar"): ("write", "*"),
    ("POST", "/folder/{op}"): ("write", "*"),
}

#: Callers: no token, a token this cluster never made, and granted tokens given as
#: (level, on): ``this`` is the name the route touches, ``other`` another served name.
CALLERS = {
    "none": None, "bad": None, "owner": None,
    "read": ("read", "*"), "read_this": ("read", "this"), "read_other": ("read", "other"),
    "write": ("write", "*"), "write_this": ("write", "this"),
}


def _app_routes() -> set[tuple[str, str]]:
    home = Path(tempfile.mkdtemp(prefix="rh-routes-"))
    ctx = ServerContext(host="127.0.0.1", port=0, rh_home=home, cluster_name="routes")
    app = build_app(ctx, None, get_plugin_manager(autoload=False), access_log=False)
    return {(m, r.path) for r in app.routes for m in r.methods}


def _cases():
    """Every rule, and HEAD wherever GET is (Starlette answers HEAD for GET routes)."""
    for (method, path), rule in RULES.items():
        yield method, path, rule
        if method == "GET":
            yield "HEAD", path, ("head_call", None) if path.endswith("/{name}/{method}") else rule


def expected(rule, caller: str, den_auth: bool) -> int:
    level, on = rule
    if level == "head_call":
        return 405  # a HEAD request must not call a function
    if level == "none":
        return 200
    if level in ("owner", "owner_unsupervised"):
        ok = 200 if level == "owner" else 409
        return ok if caller == "owner" else 401 if caller == "none" else 403
    if caller == "owner":
        return 200
    if caller == "bad":
        return 403
    if caller == "none":
        return 200 if level == "read" and not den_auth else 401
    g_level, g_on = CALLERS[caller]
    covers = g_on == "*" or (on == "name" and g_on == "this")
    if covers and (g_level == "write" or level == "read"):
        return 200
    if level == "read" and not den_auth:
        return 200  # a valid token never gets less than no token
    return 403


def test_every_route_has_a_rule():
    """A new route (or method) added to the app without a rule here fails this test."""
    want = {(m if m != "PICKLE" else "POST", p) for m, p in RULES}
    want |= {("HEAD", p) for m, p in RULES if m == "GET"}
    assert _app_routes() == want


@pytest.fixture(scope="module", params=[True, False], ids=["den_auth", "open"])
def cluster(rh_home, request):
    """A local cluster serving add and concat; invalid tokens are part of the matrix, so the
    brake on them is raised for this server (RH_AUTH_FAILURES_PER_MINUTE)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RH_AUTH_FAILURES_PER_MINUTE", "100000")
        c = rh.cluster(name=f"matrix-{request.param_index}", provider="local",
                       den_auth=request.param)
        rh.function(userfns.add).to(c)
        rh.function(userfns.concat).to(c)
    yield c
    c.down()
    shutil.rmtree(_FILES, ignore_errors=True)


_fresh = itertools.count()
#: Files the /folder routes read and write (the servers run on this machine).
_FILES = Path(tempfile.mkdtemp(prefix="rh-matrix-files-"))


def _request(c, method: str, path: str, caller: str):
    """Set up the route's target, send the request as ``caller``, and return (response,
    check) where ``check()`` says whether the target is still as it was."""
    owner = c.client().http.headers["authorization"].split()[1]
    n = next(_fresh)
    this, body, headers = ["add"], {}, {}
    still = lambda: True  # noqa: E731
    if path.endswith("/{name}/{method}"):
        url = "/call/add/call" if path.startswith("/call/") else "/add/call"
        if method == "GET" or method == "HEAD":
            url += "?a=1&b=2"
        elif method == "POST":
            body = {"json": {"a": 1, "b": 2}}
        else:
            body = {"content": wire.joined(wire.dumps_pickle(((1, 2), {})))}
            headers["Content-Type"] = wire.PICKLE_CT
            method = "POST"
    elif path == "/runs/{key}/cancel":  # a run still going: an async sleep stops at once
        handle = rh.function(userfns.async_sleep).to(c).remote(60)
        url = path.replace("{key}", handle.run_key)
        this = ["async_sleep"]
        still = lambda: _status(c, handle.run_key) == "running"  # noqa: E731
    elif path.startswith("/runs/{key}"):
        handle = rh.function(userfns.add).to(c).remote(2, 3)
        rh.get(handle)
        url = path.replace("{key}", handle.run_key)
        still = lambda: handle.run_key in c.client().get_json("/keys")["runs"]  # noqa: E731
    elif path == "/{name}":
        target = f"target_{n}"
        this, url = [target], f"/{target}"
        if method == "PUT":
            body = {"json": {"kind": "function", "pointer": {
                "module": "userfns", "qualname": "add", "root": str(Path(userfns.__file__).parent)}}}
            still = lambda: target not in c.keys()  # noqa: E731
        elif method == "PATCH":
            rh.module(userfns.Counter).to(c, name=target)
            this = [target, f"renamed_{n}"]
            body = {"json": {"rename": f"renamed_{n}"}}
            still = lambda: target in c.keys() and f"renamed_{n}" not in c.keys()  # noqa: E731
        else:
            rh.function(userfns.add).to(c, name=target)
            still = lambda: target in c.keys()  # noqa: E731
    elif path == "/objects/{key}":
        target = f"obj_{n}"
        this, url = [target], f"/objects/{target}"
        if method == "PUT":
            body = {"json": {"v": n}}
            still = lambda: c.get(target, default=None) is None  # noqa: E731
        else:
            made = httpx.put(c.client().info.base_url + url, json={"v": n},
                             headers={"Authorization": f"Bearer {owner}"})
            assert made.status_code == 200, made.text
            still = lambda: c.get(target, default=None) == {"v": n}  # noqa: E731
    elif path == "/auth/tokens/{who}":
        c.grant(f"victim_{n}", "read", ["add"])
        url = f"/auth/tokens/victim_{n}"
        still = lambda: any(t["user"] == f"victim_{n}" for t in c.tokens())  # noqa: E731
    elif path == "/commands":
        url, body = path, {"json": {"commands": ["true"]}}
    elif path == "/secrets/{name}":  # variables only: this server's home is the test's own
        url = f"/secrets/matrix_{n}"
        body = {"json": {"env": f"matrix_env_{n}", "env_vars": {"MATRIX_VALUE": str(n)}}}
        still = lambda: f"matrix_{n}" not in c.status()["secrets"]  # noqa: E731
    elif path == "/folder/tar" and method in ("GET", "HEAD"):
        _FILES.mkdir(exist_ok=True)
        (_FILES / "a.txt").write_text("a")
        url = f"/folder/tar?path={_FILES}"
    elif path == "/folder/tar":
        dest = _FILES / f"in_{n}"
        url, body = f"/folder/tar?path={dest}", {"content": archive.pack_contents({"b.txt": b"b"})}
        still = lambda: not dest.exists()  # noqa: E731
    elif path == "/folder/{op}":
        made = _FILES / f"made_{n}"
        url, body = "/folder/mkdir", {"json": {"path": str(made)}}
        still = lambda: not made.exists()  # noqa: E731
    elif path == "/auth/tokens":
        url = path
        if method == "POST":
            body = {"json": {"user": f"made_{n}", "access": "read"}}
            still = lambda: not any(t["user"] == f"made_{n}" for t in c.tokens())  # noqa: E731
    else:
        url = path
    if caller == "owner":
        headers["Authorization"] = f"Bearer {owner}"
    elif caller == "bad":
        headers["Authorization"] = "Bearer rht_this-token-was-never-made-here"
    elif caller != "none":
        level, on = CALLERS[caller]
        names = {"*": ["*"], "this": this, "other": ["concat"]}[on]
        headers["Authorization"] = f"Bearer {c.grant(f'u{n}', level, names)}"
    with httpx.Client(base_url=c.client().info.base_url, timeout=30) as http:
        return http.request(method, url, headers=headers, **body), still


def _status(c, key: str) -> str:
    return next(r["status"] for r in c.runs() if r["run_key"] == key)


@pytest.mark.parametrize("caller", list(CALLERS))
@pytest.mark.parametrize("method,path,rule", list(_cases()),
                         ids=[f"{m} {p}" for m, p, _ in _cases()])
def test_route_answers_each_caller_as_its_rule_says(cluster, method, path, rule, caller):
    want = expected(rule, caller, cluster.den_auth)
    r, unchanged = _request(cluster, method, path, caller)
    ok = {200, 201, 202}
    if want == 200:
        assert r.status_code in (201 if (method, path) == ("POST", "/auth/tokens") else 200,), \
            (r.status_code, r.text[:300])
        return
    assert r.status_code == want, (r.status_code, r.text[:300])
    if method != "HEAD":
        assert r.json()["error"]["kind"] == ("auth" if want in (401, 403) else "not_supervised"
                                             if want == 409 else "bad_request")
    assert r.status_code not in ok and unchanged(), "a refused request changed something"
