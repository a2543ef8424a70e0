"""Secrets sent to a real local cluster, whose server runs with a home folder of its own: the
provider's files where its tools look (0600, owned by the cluster's user), variables in an env's
workers as the function sees them, who may send them on a ``den_auth`` cluster, and a cluster
that cannot be reached."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import secretfns

import rh_core as rh

RH = Path(sys.executable).with_name("rh")
AWS = {"access_key": "AKIACLUSTER0000001", "secret_key": "cluster-secret-9f2"}
KUBE = ("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://k'}\n"
        "contexts:\n- name: x\n  context: {cluster: c, user: u}\n")


def start_with_home(name: str, home: Path, **fields):
    """A local cluster whose server's home folder is ``home`` (the server takes the environment
    of the process that starts it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        return rh.cluster(name=name, provider="local", **fields).up_if_not()


@pytest.fixture(scope="module")
def node_home(tmp_path_factory):
    return tmp_path_factory.mktemp("node-home")


@pytest.fixture(scope="module")
def node(rh_home, node_home):
    cluster = start_with_home("secrets-node", node_home)
    yield cluster
    cluster.down()


@pytest.fixture
def saved(rh_home):
    yield
    for name in rh.secrets():
        rh.secret(name).delete()


def test_provider_files_land_where_the_tools_look(node, node_home):
    aws = rh.provider_secret("aws", values=AWS)
    assert aws.to(node) is aws
    facts = rh.function(secretfns.file_facts).to(node)("~/.aws/credentials")
    assert facts["path"] == str(node_home / ".aws" / "credentials")
    assert facts["text"] == ("[default]\naws_access_key_id = AKIACLUSTER0000001\n"
                             "aws_secret_access_key = cluster-secret-9f2\n")
    assert (facts["mode"], facts["folder_mode"]) == (0o600, 0o700)
    assert facts["uid"] == facts["user_uid"]  # owned by the user the cluster runs as

    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    rh.provider_secret("ssh", key="id_deploy", values={"private_key": key,
                                                       "public_key": "ssh-ed25519 AAAA x\n"}).to(node)
    facts = rh.function(secretfns.file_facts).to(node)("~/.ssh/id_deploy")
    assert (facts["text"], facts["mode"], facts["folder_mode"]) == (key, 0o600, 0o700)
    assert rh.function(secretfns.file_facts).to(node)("~/.ssh/id_deploy.pub")["mode"] == 0o600

    status = node.status()["secrets"]
    assert status["aws"] == {"env": None, "env_vars": [], "files": [facts["path"].replace(
        ".ssh/id_deploy", ".aws/credentials")]}


def test_a_path_variable_points_at_the_file_written_there(node, node_home):
    env = rh.env(name="kube-env")
    rh.provider_secret("kubernetes", values={"kubeconfig": KUBE}).to(node, env=env)
    read = rh.function(secretfns.read_env_file).to(node, env=env)
    assert read("KUBECONFIG") == KUBE
    assert rh.function(secretfns.getenv).to(node, env=env, name="kube_getenv")("KUBECONFIG") == \
        str(node_home / ".kube" / "config")


def test_a_secret_of_your_own_becomes_variables_of_an_envs_workers(node, saved):
    env = rh.env(name="llm-env", env_vars={"MODE": "test"})
    getenv = rh.function(secretfns.getenv).to(node, env=env)
    assert getenv("OPENAI_API_KEY") is None

    s = rh.secret(name="openai", values={"api_key": "sk-cluster-77a1"}).save()
    rh.secret("openai").to(node, env=env)  # the env's workers run now: they are restarted
    assert getenv("OPENAI_API_KEY") == "sk-cluster-77a1"
    assert getenv("MODE") == "test"
    base = rh.function(secretfns.getenv).to(node, name="base_getenv")
    assert base("OPENAI_API_KEY") is None  # another env: not there

    s.to(node, env=env, env_vars={"LLM_TOKEN": "api_key"})  # sent again: replaces its variables
    assert getenv("LLM_TOKEN") == "sk-cluster-77a1" and getenv("OPENAI_API_KEY") is None
    s.to(node)  # no env: the base env, where functions go without one
    assert base("OPENAI_API_KEY") == "sk-cluster-77a1"

    status = node.status()
    assert status["secrets"]["openai"] == {"env": "base", "env_vars": ["OPENAI_API_KEY"],
                                           "files": []}
    assert "sk-cluster-77a1" not in json.dumps(status)


def test_values_are_not_kept_on_the_cluster_s_disk(node, rh_home):
    """Variables live in the server's memory: a restarted server needs the secret again."""
    env = rh.env(name="restart-env")
    getenv = rh.function(secretfns.getenv).to(node, env=env)
    rh.secret(name="temp", values={"token": "tok-restart-31"}).to(node, env=env)
    assert getenv("TEMP_TOKEN") == "tok-restart-31"
    for path in (rh_home / "server" / "secrets-node").rglob("*"):
        assert not path.is_file() or b"tok-restart-31" not in path.read_bytes(), path
    node.restart_server()
    assert getenv("TEMP_TOKEN") is None
    assert "temp" not in node.status()["secrets"]


def test_bad_requests_are_refused_and_change_nothing(node):
    with pytest.raises(rh.ConfigError, match="bad environment variable name 'RH_CLUSTER_TOKEN'"):
        rh.secret(name="x", values={"k": "v"}).to(node, env_vars={"RH_CLUSTER_TOKEN": "k"})
    client = node.client()
    for body, words in [({"files": [{"path": "/etc/passwd-copy", "content": "x"}]}, "not inside"),
                        ({"files": [{"path": "../escape", "content": "x"}]}, "not inside"),
                        ({"env_vars": {"RH_CLUSTER_URL": "x"}}, "not a variable name"),
                        ({"env": "no such/env"}, "bad env name"),
                        ({"files": [{"path": "~/a\x00b", "content": "x"}]}, "NUL character"),
                        ({"env_vars": {"A": "a\x00b"}}, "NUL character"),
                        ({"files": [{"path": "~/" + "n" * 300, "content": "x"}]},
                         "cannot write the secret's files: File name too long"),
                        ({"files": [{"path": "~", "content": "x"}]}, "is a folder")]:
        with pytest.raises(rh.ServerError, match=words):
            client.put_secret("bad", body)
    assert "bad" not in node.status()["secrets"]


def test_to_a_cluster_that_cannot_be_reached_says_so(monkeypatch):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("RH_CLUSTER_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("RH_CLUSTER_TOKEN", "rhw_not-a-real-token")
    gone = rh.here
    with pytest.raises(rh.ConnectionFailedError) as e:
        rh.secret(name="openai", values={"api_key": "sk-never-sent-5"}).to(gone)
    msg = str(e.value)
    assert "secret 'openai' was not sent" in msg and "cannot be reached" in msg
    assert "sk-never-sent-5" not in msg


@pytest.fixture(scope="module")
def guarded_node(rh_home, tmp_path_factory):
    cluster = start_with_home("secrets-den", tmp_path_factory.mktemp("den-home"), den_auth=True)
    yield cluster
    cluster.down()


def test_on_a_den_auth_cluster_only_a_write_token_may_send_secrets(guarded_node):
    body = rh.secret(name="shared", values={"token": "tok-den-0c4"}).payload()
    url = f"{guarded_node.client().info.base_url}/secrets/shared"
    read, write = guarded_node.grant("reader", "read"), guarded_node.grant("writer", "write")
    narrow = guarded_node.grant("narrow", "write", ["add"])
    for token, status in [(None, 401), (read, 403), (narrow, 403), (write, 200)]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = httpx.put(url, json=body, headers=headers)
        assert r.status_code == status, r.text
        assert "tok-den-0c4" not in r.text
    rh.secret(name="owner-sent", values={"k": "v"}).to(guarded_node)  # the owner may
    assert set(guarded_node.status()["secrets"]) == {"shared", "owner-sent"}


def test_rh_secret_to(node, saved):
    rh.secret(name="cli-sent", values={"token": "tok-cli-8e"}).save()
    node.save()
    try:
        out = subprocess.run([str(RH), "secret", "to", "cli-sent", "secrets-node"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "sent secret 'cli-sent' to cluster 'secrets-node'\n"
    finally:
        node.delete_configs()
    assert node.status()["secrets"]["cli-sent"]["env_vars"] == ["CLI_SENT_TOKEN"]
    assert rh.function(secretfns.getenv).to(node, name="cli_getenv")("CLI_SENT_TOKEN") == "tok-cli-8e"


def test_the_server_never_gets_values_on_a_command_line(node):
    rh.secret(name="argv", values={"token": "tok-argv-19"}).to(node, env=rh.env(name="argv-env"))
    pids = [w["pid"] for e in node.status()["envs"].values() for w in e["workers"] if w["pid"]]
    pids.append(node.client().health()["pid"])
    for pid in pids:
        assert b"tok-argv-19" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert os.environ.get("ARGV_TOKEN") is None  # and nothing was set here
