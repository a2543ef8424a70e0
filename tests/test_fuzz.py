"""A bounded fuzz run of the server's own OpenAPI document with schemathesis, as an anonymous
caller, as a holder of a read token and as the owner: whatever the inputs (pickled bodies
included: random bytes, bytes behind the rh magic, and real rh pickles), the server answers
4xx or a result, never a 500 of its own, and keeps serving."""

from __future__ import annotations

import re

import httpx
import pytest
import schemathesis
import userfns
from hypothesis import settings
from hypothesis import strategies as st

import rh_core as rh
from rh_core.transport import archive, wire
from rh_server.routes.openapi import openapi_document

_PICKLES = [wire.joined(wire.dumps_pickle(v)) for v in [
    ((1, 2), {}), ((), {"a": "x", "b": "y"}), (("a",), {}), [((1,), {})], None, ((), {})]]
schemathesis.openapi.media_type("application/x-rh-pickle", st.one_of(
    st.binary(max_size=256),
    st.binary(max_size=64).map(lambda b: b"RHP5" + b),
    st.sampled_from(_PICKLES),
))
schemathesis.openapi.media_type("application/x-rh-tar", st.one_of(
    st.binary(max_size=256),
    st.sampled_from([archive.pack_contents({"a.txt": b"x", "sub/b.txt": b"y"})]),
))

schema = schemathesis.openapi.from_dict(openapi_document(rh.__version__))

_SERVED = {"name": ["concat", "add", "counter"], "method": ["call", "incr", "count", "history"],
           "op": ["resolve", "ls", "mkdir", "mv", "copy", "rm"]}


def _inside(value) -> str:
    return "fuzz/" + (re.sub(r"[^A-Za-z0-9_-]", "_", str(value))[:40] or "x")


def keep_inside(case) -> None:
    """The owner's fuzzed /folder paths stay inside the fuzz home: a random path there could be
    any file of the machine (a tar of /, an rm of /usr). Every other input stays random."""
    if not case.path.startswith("/folder"):
        return
    if isinstance(case.query, dict) and "path" in case.query:
        case.query["path"] = _inside(case.query["path"])
    if isinstance(case.body, dict):
        for key in ("path", "dest"):
            if key in case.body:
                case.body[key] = _inside(case.body[key])
        if isinstance(case.body.get("names"), list):
            case.body["names"] = [_inside(n)[5:] for n in case.body["names"]]


@schema.hook
def flatmap_path_parameters(ctx, params):
    """Half the time, calls go to what the target serves (random names only reach 404s);
    PUT and DELETE keep random names, so what is served stays for the calls."""
    if not params or not set(params) & set(_SERVED) or ctx.operation.method.upper() != "GET" \
            and ctx.operation.method.upper() != "POST":
        return st.just(params)
    served = st.fixed_dictionaries({k: st.sampled_from(_SERVED[k]) if k in _SERVED else st.just(v)
                                    for k, v in params.items()})
    return st.one_of(st.just(params), served)


@pytest.fixture(scope="module")
def target(rh_home, tmp_path_factory):
    """The brake on invalid tokens is raised: fuzzed headers are invalid tokens by the hundred
    (RH_AUTH_FAILURES_PER_MINUTE). The server's home folder is a temporary one: fuzzed shell
    commands (POST /commands, as the owner) run there."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RH_AUTH_FAILURES_PER_MINUTE", "1000000")
        mp.setenv("HOME", str(tmp_path_factory.mktemp("fuzzed-home")))
        cluster = rh.cluster(name="fuzzed", provider="local", den_auth=True)
        rh.function(userfns.concat).to(cluster)
        rh.function(userfns.add).to(cluster)
        rh.module(userfns.Counter).to(cluster)(name="counter")
    yield cluster
    cluster.down()


@pytest.fixture(scope="module")
def callers(target):
    return {"anonymous": {}, "reader": {"Authorization": f"Bearer {target.grant('fuzz', 'read')}"},
            "owner": {"Authorization": target.client().http.headers["authorization"]}}


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
# No health check is suppressed: generation here is fast and its inputs are not filtered much.
@settings(max_examples=60, deadline=None, derandomize=True)
@pytest.mark.parametrize("who", ["anonymous", "reader", "owner"])
def test_no_server_error(case, target, callers, who):
    keep_inside(case)
    response = case.call(base_url=target.client().info.base_url, headers=callers[who], timeout=30)
    assert not _own_500(response), (case.method, case.formatted_path, response.text[:500])


def test_server_still_serves_after_fuzzing(target, callers):
    url = target.client().info.base_url
    assert httpx.get(f"{url}/health").status_code == 200
    assert {"concat", "add", "counter"} <= set(
        httpx.get(f"{url}/keys", headers=callers["owner"]).json()["keys"])
    assert rh.function(userfns.add).to(target)(2, 3) == 5
