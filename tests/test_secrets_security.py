"""Where a secret's values may be, and everywhere they may not: a session creates, saves, sends
and reads secrets, and makes rh fail in the ways users meet; then every file under the rh home,
every saved config, the server's logs, ``rh status``, ``/status``, ``/openapi.json``, the
secrets' reprs, every error message and the processes' command lines are searched for the
values. Only the backend (the keyring's file, outside the rh home) and the files written where
the tools read them (in the cluster user's home) hold them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import secretfns
from waiting import wait_until

import rh_core as rh

RH = Path(sys.executable).with_name("rh")
CUSTOM = "sk-sweep-a81c4f0d"
AWS_KEY = "sweep-aws-secret-77e2"
KUBE_TOKEN = "sweep-kube-token-5b9"
VALUES = (CUSTOM, AWS_KEY, KUBE_TOKEN)
KUBE = ("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://k'}\n"
        f"contexts:\n- name: x\n  context: {{cluster: c, user: u}}\nusers:\n- name: u\n"
        f"  user: {{token: {KUBE_TOKEN}}}\n")


@pytest.fixture(scope="module")
def session(rh_home, tmp_path_factory):
    """Runs the session; yields what it saw (errors, reprs) and the cluster."""
    node_home = tmp_path_factory.mktemp("sweep-node")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(node_home))
        node = rh.cluster(name="sweep", provider="local", den_auth=True).up_if_not()
    seen: list[str] = []

    def error(call):
        try:
            call()
        except Exception as e:  # every failure's message is searched
            seen.append(f"{type(e).__name__}: {e}")
            return
        raise AssertionError("expected an error")

    try:
        own = rh.secret(name="sweep-openai", values={"api_key": CUSTOM}).save(overwrite=True)
        aws = rh.provider_secret("aws", values={"access_key": "AKIASWEEP000001",
                                                "secret_key": AWS_KEY}).save(overwrite=True)
        kube = rh.provider_secret("kubernetes", values={"kubeconfig": KUBE})
        seen += [repr(own), str(own), repr(aws), repr(kube), repr(rh.secret("sweep-openai")),
                 json.dumps(own.config()), json.dumps(aws.config())]
        env = rh.env(name="sweep-env")
        getenv = rh.function(secretfns.getenv).to(node, env=env)
        rh.secret("sweep-openai").to(node, env=env)
        rh.secret("aws").to(node)
        kube.to(node, env=env)
        assert getenv("SWEEP_OPENAI_API_KEY") == CUSTOM  # it did arrive

        def uses_the_secret():  # its code, pickled, is kept in the server's saved specs
            return own.keys
        assert rh.function(uses_the_secret).to(node)() == ["api_key"]
        assert rh.secret("sweep-openai").values == {"api_key": CUSTOM}

        error(lambda: rh.secret(name="sweep-openai", values={"api_key": CUSTOM}).save())
        error(lambda: own.in_env(env_vars={"X": "nope"}))
        error(lambda: rh.provider_secret("aws", values={"access_key": AWS_KEY}))
        error(lambda: node.client().put_secret("bad", {"files": [{"path": "/etc/x",
                                                                   "content": CUSTOM}]}))
        error(lambda: node.client().put_secret("bad", {"env_vars": {"bad name": CUSTOM}}))
        reader = node.grant("sweep-reader", "read")
        r = httpx.put(f"{node.client().info.base_url}/secrets/x", headers={
            "Authorization": f"Bearer {reader}"}, json={"env_vars": {"A": CUSTOM}})
        assert r.status_code == 403
        seen.append(r.text)
        malformed = node_home / "bad-credentials"
        malformed.write_text(f"[default]\naws_secret_access_key {AWS_KEY}\n")
        error(lambda: rh.provider_secret("aws", path=str(malformed)))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("RH_CLUSTER_URL", f"http://127.0.0.1:{port}")
            mp.setenv("RH_CLUSTER_TOKEN", "rhw_x")
            error(lambda: rh.secret("sweep-openai").to(rh.here))
        yield node, node_home, seen
    finally:
        node.down()
        for name in ("sweep-openai", "aws"):
            rh.secret(name).delete()


def _holding(text: str) -> list[str]:
    return [v for v in VALUES if v in text]


def test_the_values_arrived_where_the_tools_read_them(session):
    node, node_home, _ = session
    assert AWS_KEY in (node_home / ".aws" / "credentials").read_text()
    assert KUBE_TOKEN in (node_home / ".kube" / "config").read_text()


def test_no_file_under_the_rh_home_holds_a_value(session, rh_home):
    node, _, _ = session
    wait_until(lambda: any(e["path"] == "/secrets/sweep-openai" for e in node.access_log()),
               10, "the access log to record the secret sent")
    holding = [str(p) for p in rh_home.rglob("*") if p.is_file() and not p.is_symlink()
               and _holding(p.read_bytes().decode(errors="replace"))]
    assert holding == []
    assert any((rh_home / "rns" / "secrets").glob("*.json"))  # the references are there


def test_no_log_status_openapi_repr_or_error_holds_a_value(session):
    node, _, seen = session
    assert len(seen) >= 15
    for text in seen:
        assert _holding(text) == [], text
    client = node.client()
    for text in (node.logs(), client.server_log(access=True), json.dumps(node.status()),
                 json.dumps(client.get_json("/openapi.json"))):
        assert _holding(text) == []
    out = subprocess.run([str(RH), "status", "sweep"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "sweep-openai" in out.stdout and _holding(out.stdout + out.stderr) == []
    listed = subprocess.run([str(RH), "secret", "list"], capture_output=True, text=True,
                            timeout=60)
    assert "sweep-openai" in listed.stdout and _holding(listed.stdout) == []


def test_no_command_line_holds_a_value(session):
    node, _, _ = session
    status = node.status()
    pids = [w["pid"] for e in status["envs"].values() for w in e["workers"] if w["pid"]]
    pids.append(node.client().health()["pid"])
    for pid in pids:
        assert _holding(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")) == []
