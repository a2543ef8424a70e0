"""Providers' credentials read from where their tools keep them (a temporary home folder here),
written back with ``write()``, set with ``in_env()``; clear errors for missing and malformed
files that never show a value; and Runhouse's ``rh.Secrets`` spellings."""

from __future__ import annotations

import json
import os
import stat

import pytest

import rh_core as rh
from rh_core.resources.provider_secrets import providers

AWS = "[default]\naws_access_key_id = AKIAEXAMPLE0000001\naws_secret_access_key = aws-secret-1\n"
KUBE = ("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://k'}\n"
        "contexts:\n- name: x\n  context: {cluster: c, user: u}\nusers:\n- name: u\n"
        "  user: {token: kube-token-1}\n")
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA=\n-----END OPENSSH PRIVATE KEY-----\n"


@pytest.fixture
def home(tmp_path, monkeypatch, rh_home):
    """A home folder of the test's own, and none of the providers' variables set."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for p in providers().values():
        for var in (*p.env_vars, *p.path_vars):
            monkeypatch.delenv(var, raising=False)
    for var in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_PROFILE", "HF_HOME", "HF_TOKEN_PATH",
                "GH_CONFIG_DIR", "AZURE_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    yield tmp_path
    for name in rh.secrets():
        rh.secret(name).delete()


def put(home, path: str, text: str):
    full = home / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text(text)
    return full


def test_every_provider_reads_its_files(home):
    put(home, ".aws/credentials", AWS)
    put(home, ".config/gcloud/application_default_credentials.json", json.dumps(
        {"type": "authorized_user", "client_id": "cid", "client_secret": "gcs-1",
         "refresh_token": "rt-1"}))
    put(home, ".azure/clouds.config", "[AzureCloud]\nsubscription = sub-1\n")
    put(home, ".cache/huggingface/token", "hf_token1\n")
    put(home, ".config/gh/hosts.yml", "github.com:\n    oauth_token: gho_token1\n    user: me\n")
    put(home, ".ssh/id_ed25519", KEY)
    put(home, ".ssh/id_ed25519.pub", "ssh-ed25519 AAAA me@host\n")
    put(home, ".kube/config", KUBE)

    assert rh.provider_secret("aws").values == {"access_key": "AKIAEXAMPLE0000001",
                                                "secret_key": "aws-secret-1"}
    gcp = rh.provider_secret("gcp")
    assert gcp.values["refresh_token"] == "rt-1" and gcp.path.endswith("default_credentials.json")
    assert rh.provider_secret("azure").values == {"subscription_id": "sub-1"}
    assert rh.provider_secret("huggingface").values == {"token": "hf_token1"}
    assert rh.provider_secret("github").values == {"oauth_token": "gho_token1"}
    ssh = rh.provider_secret("ssh", key="id_ed25519")
    assert (ssh.name, ssh.path) == ("ssh-id_ed25519", "~/.ssh/id_ed25519")
    assert ssh.values == {"private_key": KEY, "public_key": "ssh-ed25519 AAAA me@host\n"}
    assert rh.provider_secret("ssh").name == "ssh-id_ed25519"  # the first usual key found
    assert rh.provider_secret("kubernetes").values == {"kubeconfig": KUBE}


def test_environment_variables_are_read_over_the_files(home, monkeypatch):
    put(home, ".aws/credentials", AWS)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env")
    assert rh.provider_secret("aws").values["secret_key"] == "from-env"
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(put(home, "elsewhere/creds", AWS.replace(
        "[default]", "[work]"))))
    monkeypatch.setenv("AWS_PROFILE", "work")
    assert rh.provider_secret("aws").values["access_key"] == "AKIAEXAMPLE0000001"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-1")
    assert rh.provider_secret("openai").values == {"api_key": "sk-openai-1"}
    monkeypatch.setenv("HF_TOKEN", "hf_env")
    assert rh.provider_secret("huggingface").values == {"token": "hf_env"}


def test_missing_credentials_name_the_files_and_variables_looked_at(home):
    with pytest.raises(rh.SecretNotFoundError) as e:
        rh.provider_secret("aws")
    msg = str(e.value)
    assert f"{home}/.aws/credentials" in msg
    assert "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY" in msg and "aws configure" in msg
    assert "values={'access_key': ..., 'secret_key': ..., 'session_token': ...}" in msg
    with pytest.raises(rh.SecretNotFoundError, match=r"\.ssh/id_rsa \(key='id_rsa'\)"):
        rh.provider_secret("ssh", key="id_rsa")
    with pytest.raises(rh.SecretNotFoundError, match="KUBECONFIG"):
        rh.provider_secret("kubernetes")
    with pytest.raises(rh.ConfigError, match="unknown provider 'snowflake'; known: "):
        rh.provider_secret("snowflake")


@pytest.mark.parametrize("provider,path,text,words", [
    ("aws", ".aws/credentials", "[default]\naws_secret_access_key = leaked-1\nno equals here\n",
     "line 3"),
    ("aws", ".aws/credentials", "aws_secret_access_key = leaked-1\n", "line 1"),
    ("gcp", ".config/gcloud/application_default_credentials.json", '{"private_key": "leaked-1",',
     "not valid JSON"),
    ("kubernetes", ".kube/config", "users:\n- token: leaked-1\n  - : [\n", "not valid YAML at line"),
    ("ssh", ".ssh/id_ed25519", "leaked-1\n", "not a private key"),
])
def test_a_malformed_file_is_named_without_its_text(home, provider, path, text, words):
    put(home, path, text)
    with pytest.raises(rh.ConfigError) as e:
        rh.provider_secret(provider)
    assert str(home / path) in str(e.value) and words in str(e.value)
    assert "leaked-1" not in str(e.value)


def test_values_given_directly_are_checked(home):
    aws = rh.provider_secret("aws", values={"access_key": "a", "secret_key": "b"})
    assert aws.values == {"access_key": "a", "secret_key": "b"} and aws.provider == "aws"
    with pytest.raises(rh.ConfigError, match="a aws secret has the keys access_key, secret_key .*missing"):
        rh.provider_secret("aws", values={"access_key": "a"})
    with pytest.raises(rh.ConfigError, match="unknown: region"):
        rh.provider_secret("aws", values={"access_key": "a", "secret_key": "b", "region": "x"})


def test_write_puts_files_where_the_tools_look_and_loses_nothing(home):
    creds = put(home, ".aws/credentials", "# mine\n[prod]\naws_access_key_id = PROD\n\n"
                                           "[default]\naws_access_key_id = OLD\n")
    aws = rh.provider_secret("aws", values={"access_key": "NEW", "secret_key": "s3cr3t"})
    assert aws.write() == [str(creds)]
    text = creds.read_text()
    assert text.startswith("# mine\n[prod]\naws_access_key_id = PROD\n")
    assert "[default]\naws_access_key_id = NEW\naws_secret_access_key = s3cr3t\n" in text
    assert "OLD" not in text and "OLD" in creds.with_name("credentials.rh-backup").read_text()
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600

    kube = rh.provider_secret("kubernetes", values={"kubeconfig": KUBE})
    (written,) = kube.write()
    assert written == str(home / ".kube" / "config") and (home / ".kube/config").read_text() == KUBE
    assert stat.S_IMODE((home / ".kube").stat().st_mode) == 0o700
    assert kube.write(path=str(home / "alt" / "kubeconfig")) == [str(home / "alt/kubeconfig")]

    own = rh.secret(name="mine", values={"k": "v"})
    with pytest.raises(rh.ConfigError, match="has no files of its own; give path="):
        own.write()
    (path,) = own.write(path="~/mine.json")
    assert json.loads((home / "mine.json").read_text()) == {"k": "v"}


def test_runhouse_spellings(home, monkeypatch):
    put(home, ".aws/credentials", AWS)
    put(home, ".cache/huggingface/token", "hf_token1")
    saved = rh.Secrets.put(provider="aws")
    assert saved.name == "aws" and rh.secret("aws").values["secret_key"] == "aws-secret-1"
    rh.Secrets.put(provider="snowflake", secret={"user": "me", "password": "pw-1"})
    assert rh.Secrets.get(provider="snowflake") == {"user": "me", "password": "pw-1"}
    assert rh.secret("snowflake").provider is None  # your own secret, named after it

    assert rh.Secrets.extract_and_upload() == ["aws", "huggingface"]
    assert rh.secrets() == ["aws", "huggingface", "snowflake"]

    (home / ".aws" / "credentials").unlink()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "replaced-below")
    rh.Secrets.put(provider="azure", secret={"subscription_id": "sub-9"})
    assert rh.Secrets.download_into_env(providers=["aws", "azure"]) == ["aws", "azure"]
    assert "aws_secret_access_key = aws-secret-1" in (home / ".aws/credentials").read_text()
    assert os.environ["AWS_ACCESS_KEY_ID"] == "AKIAEXAMPLE0000001"
    assert "subscription = sub-9" in (home / ".azure/clouds.config").read_text()
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID")
    assert rh.Secrets.delete("snowflake") is True
