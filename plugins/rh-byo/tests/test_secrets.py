"""Secrets sent to a bring-your-own node over the real loopback sshd: the provider's files in
the cluster user's home, mode 0600 and owned by that user, variables in an env's workers, and a
node that cannot be reached."""

from __future__ import annotations

import pwd

import pytest
import secretfns

import rh_core as rh

AWS = {"access_key": "AKIABYO00000000001", "secret_key": "byo-secret-3c7d"}


@pytest.fixture(autouse=True)
def no_saved_secrets(rh_home):
    yield
    for name in rh.secrets():
        rh.secret(name).delete()


def test_provider_files_are_the_cluster_users_own(node, sshd):
    rh.provider_secret("aws", values=AWS).to(node)
    facts = rh.function(secretfns.file_facts).to(node)("~/.aws/credentials")
    user = pwd.getpwnam(sshd["user"])
    assert facts["path"] == f"{user.pw_dir}/.aws/credentials"
    assert facts["text"] == ("[default]\naws_access_key_id = AKIABYO00000000001\n"
                             "aws_secret_access_key = byo-secret-3c7d\n")
    assert (facts["mode"], facts["folder_mode"]) == (0o600, 0o700)
    assert facts["uid"] == user.pw_uid == facts["user_uid"]
    assert node.status()["secrets"]["aws"]["files"] == [facts["path"]]


def test_a_secret_becomes_variables_of_an_envs_workers(node):
    env = rh.env(name="byo-secret-env")
    getenv = rh.function(secretfns.getenv).to(node, env=env)
    saved = rh.secret(name="hf", values={"token": "hf_byo_51e"}).save()
    saved.to(node, env=env, env_vars={"HF_TOKEN": "token"})
    assert getenv("HF_TOKEN") == "hf_byo_51e"
    assert "hf_byo_51e" not in str(node.status())


def test_a_node_that_cannot_be_reached_says_so(sshd):
    creds = {"ssh_user": sshd["user"], "ssh_private_key": sshd["key"], "ssh_port": 1}
    gone = rh.cluster(name="byo-gone", ips=["127.0.0.1"], ssh_creds=creds)
    with pytest.raises(rh.ConnectionFailedError) as e:
        rh.secret(name="never", values={"k": "never-sent-0a"}).to(gone)
    msg = str(e.value)
    assert "secret 'never' was not sent: cluster 'byo-gone' cannot be reached" in msg
    assert "cannot reach rhbyo@127.0.0.1" in msg and "never-sent-0a" not in msg
