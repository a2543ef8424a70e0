"""The ``vault`` secret backend against a real OpenBao server (dev mode, see conftest.py),
through the real hvac client: where the values land, the settings (mount, prefix, namespace),
token and AppRole logins, and the errors users see when the server refuses, is sealed, has no
such mount, or cannot be reached."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import hvac.exceptions
import pytest
from conftest import wait_unsealed

import rh_core as rh

RH = Path(sys.executable).with_name("rh")
VALUE = "sk-vault-1e5b7"


@pytest.fixture(autouse=True)
def clean(rh_home, bao, monkeypatch):
    """After the test: its secrets deleted with the root token and no config file."""
    yield
    (rh_home / "config.yaml").unlink(missing_ok=True)
    monkeypatch.setenv("VAULT_TOKEN", bao.root_token)
    for var in ("VAULT_SECRET_ID", "VAULT_ROLE_ID", "VAULT_NAMESPACE"):
        monkeypatch.delenv(var, raising=False)
    for name in rh.secrets():
        rh.secret(name).delete()


def kv(bao, path: str, mount: str = "secret", namespace: str | None = None) -> dict | None:
    """What the server holds at ``path``, read with the root token."""
    try:
        got = bao.client(namespace=namespace).secrets.kv.v2.read_secret_version(
            path=path, mount_point=mount, raise_on_deleted_version=True)
    except hvac.exceptions.InvalidPath:
        return None
    return got["data"]["data"]


def test_rh_plugins_lists_it():
    out = subprocess.run([str(RH), "plugins", "--json"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "RH_DISABLE_PLUGIN_AUTOLOAD": ""})
    infos = {i["name"]: i for i in json.loads(out.stdout)}
    assert infos["vault"]["distribution"] == "rh-vault"
    assert infos["vault"]["hooks"] == ["rh_secret_backends"]


def test_save_read_list_delete(bao, rh_home):
    s = rh.secret(name="openai", values={"api_key": VALUE, "org": "acme"}, backend="vault").save()
    assert kv(bao, "rh/secrets/openai") == {"api_key": VALUE, "org": "acme"}
    ref = json.loads((rh_home / "rns/secrets/openai.json").read_text())
    assert (ref["backend"], ref["keys"]) == ("vault", ["api_key", "org"])
    assert VALUE not in json.dumps(ref)
    assert rh.secret("openai").values == {"api_key": VALUE, "org": "acme"}
    assert rh.secrets(backend="vault") == ["openai"]
    assert s.delete() is True
    assert kv(bao, "rh/secrets/openai") is None
    with pytest.raises(hvac.exceptions.InvalidPath):  # every version and the metadata are gone
        bao.client().secrets.kv.v2.read_secret_metadata(path="rh/secrets/openai")
    assert rh.secrets(backend="vault") == []


def test_the_config_chooses_vault_and_its_mount_and_prefix(bao):
    bao.client().sys.enable_secrets_engine("kv", path="team-kv", options={"version": "2"})
    rh.configs.set("secret_backend", "vault")
    rh.configs.set("vault_mount", "team-kv")
    rh.configs.set("vault_path_prefix", "apps/rh")
    saved = rh.secret(name="db", values={"password": "pw-vault-2"}).save()
    assert saved.backend == "vault"
    assert kv(bao, "apps/rh/secrets/db", mount="team-kv") == {"password": "pw-vault-2"}
    assert rh.secret("db").values == {"password": "pw-vault-2"}


def test_a_namespace(bao, monkeypatch):
    root = bao.client()
    root.sys.create_namespace("team")
    bao.client(namespace="team").sys.enable_secrets_engine("kv", path="secret",
                                                           options={"version": "2"})
    monkeypatch.setenv("VAULT_NAMESPACE", "team")
    rh.secret(name="ns", values={"k": "in-team"}, backend="vault").save()
    assert kv(bao, "rh/secrets/ns", namespace="team") == {"k": "in-team"}
    assert kv(bao, "rh/secrets/ns") is None  # not in the root namespace


def _approle(bao, policy: str) -> tuple[str, str]:
    root = bao.client()
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    root.sys.create_or_update_policy("rh-apps", policy)
    root.auth.approle.create_or_update_approle("rh-app", token_policies=["rh-apps"])
    role_id = root.auth.approle.read_role_id("rh-app")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("rh-app")["data"]["secret_id"]
    return role_id, secret_id


RH_POLICY = """
path "secret/data/rh/*" { capabilities = ["create", "read", "update", "delete"] }
path "secret/metadata/rh/*" { capabilities = ["read", "delete", "list"] }
"""


def test_approle_login(bao, monkeypatch):
    role_id, secret_id = _approle(bao, RH_POLICY)
    monkeypatch.delenv("VAULT_TOKEN")
    monkeypatch.setenv("VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("VAULT_SECRET_ID", secret_id)
    rh.secret(name="app", values={"k": "by-approle"}, backend="vault").save()
    assert kv(bao, "rh/secrets/app") == {"k": "by-approle"}
    assert rh.secret("app").values == {"k": "by-approle"}

    monkeypatch.setenv("VAULT_SECRET_ID", "00000000-0000-0000-0000-000000000000")
    with pytest.raises(rh.SecretBackendError) as e:
        rh.secret(name="app2", values={"k": "v"}, backend="vault").save()
    assert f"Vault at {bao.url} refused the AppRole login" in str(e.value)
    assert "VAULT_SECRET_ID" in str(e.value)
    monkeypatch.delenv("VAULT_ROLE_ID")
    with pytest.raises(rh.SecretBackendError, match="no AppRole role id: set VAULT_ROLE_ID"):
        rh.secret(name="app2", values={"k": "v"}, backend="vault").save()


def test_403_says_whether_the_login_or_the_policy_is_wrong(bao, monkeypatch):
    root = bao.client()
    root.sys.create_or_update_policy("nothing", 'path "secret/data/other/*" { capabilities = ["read"] }')
    weak = root.auth.token.create(policies=["nothing"])["auth"]["client_token"]
    monkeypatch.setenv("VAULT_TOKEN", weak)
    with pytest.raises(rh.SecretBackendError) as e:
        rh.secret(name="denied", values={"k": VALUE}, backend="vault").save()
    msg = str(e.value)
    assert "refused it (permission denied)" in msg and "policies do not allow this path" in msg
    assert "secret/data/rh/*" in msg and VALUE not in msg
    assert rh.secrets() == []  # no reference without its values

    monkeypatch.setenv("VAULT_TOKEN", "s.not-a-token-of-this-vault")
    with pytest.raises(rh.SecretBackendError, match="the token is not valid here"):
        rh.secret(name="denied", values={"k": VALUE}, backend="vault").save()


def test_a_sealed_vault_says_so(bao):
    rh.secret(name="before", values={"k": "v"}, backend="vault").save()
    bao.client().sys.seal()
    try:
        with pytest.raises(rh.SecretBackendError, match=r"is sealed; unseal it \(`vault operator unseal`\)"):
            _ = rh.secret("before").values
    finally:
        bao.client().sys.submit_unseal_key(bao.unseal_key)
        wait_unsealed(bao)
    assert rh.secret("before").values == {"k": "v"}


def test_a_wrong_mount_says_which_and_how_to_fix_it(bao):
    rh.configs.set("vault_mount", "no-such-mount")
    with pytest.raises(rh.SecretBackendError) as e:
        rh.secret(name="m", values={"k": "v"}, backend="vault").save()
    assert "has no secrets engine at the mount 'no-such-mount'" in str(e.value)
    assert "vault secrets enable -path=no-such-mount kv-v2" in str(e.value)


def test_no_address_no_token_or_no_server(monkeypatch):
    monkeypatch.delenv("VAULT_ADDR")
    with pytest.raises(rh.SecretBackendError, match="needs Vault's address: set VAULT_ADDR"):
        rh.secret(name="x", values={"k": "v"}, backend="vault").save()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("VAULT_ADDR", f"http://127.0.0.1:{sock.getsockname()[1]}")
    with pytest.raises(rh.SecretBackendError, match="cannot be reached .*check VAULT_ADDR"):
        rh.secret(name="x", values={"k": "v"}, backend="vault").save()
    monkeypatch.delenv("VAULT_TOKEN")
    with pytest.raises(rh.SecretBackendError, match="no Vault token .*VAULT_TOKEN.*vault login"):
        rh.secret(name="x", values={"k": "v"}, backend="vault").save()
    assert rh.secrets() == []


def test_the_token_vault_login_left(bao, monkeypatch, tmp_path):
    monkeypatch.delenv("VAULT_TOKEN")
    (tmp_path / ".vault-token").write_text(bao.root_token + "\n")
    rh.secret(name="t", values={"k": "from-file"}, backend="vault").save()
    assert kv(bao, "rh/secrets/t") == {"k": "from-file"}


def test_a_failed_save_leaves_neither_half(bao, rh_home):
    rh.secret(name="kept", values={"k": "old"}, backend="vault").save()
    folder = rh_home / "rns" / "secrets"
    moved = folder.with_name("secrets-moved")
    folder.rename(moved)
    folder.symlink_to(rh_home / "gone")  # the reference cannot be written
    try:
        with pytest.raises(OSError):
            rh.secret(name="fresh", values={"k": VALUE}, backend="vault").save()
        assert kv(bao, "rh/secrets/fresh") is None
        with pytest.raises(OSError):
            rh.secret(name="kept", values={"k": "new"}, backend="vault").save(overwrite=True)
        assert kv(bao, "rh/secrets/kept") == {"k": "old"}
    finally:
        folder.unlink()
        moved.rename(folder)


def test_moving_a_secret_to_vault_leaves_nothing_in_the_keyring(bao):
    rh.secret(name="moving", values={"k": "v1"}).save()
    assert rh.secret("moving").backend == "keyring"
    rh.secret(name="moving", values={"k": "v2"}, backend="vault").save(overwrite=True)
    assert rh.secret_backend("keyring").get_values("secrets/moving") is None
    assert rh.secret("moving").values == {"k": "v2"} and kv(bao, "rh/secrets/moving") == {"k": "v2"}
