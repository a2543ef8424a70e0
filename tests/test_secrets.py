"""Secrets of your own on this machine: ``rh.secret``, ``save``, ``rh.secrets``, ``delete``, the
``rh secret`` command, and what happens when the keyring (keyrings.alt's file backend, its file
in a temporary folder for the session) is unavailable or locked, or half a save fails."""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import cloudpickle
import keyring
import pytest
from keyring.backends import fail
from keyrings.alt.file import PlaintextKeyring
from locked_keyring import LockedKeyring

import rh_core as rh

RH = Path(sys.executable).with_name("rh")
VALUE = "sk-test-4f1d9a0c7b2e"


def rh_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(RH), *args], capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture
def clean(rh_home):
    """No secret saved before or after the test."""
    def wipe():
        for name in rh.secrets():
            rh.secret(name).delete()
    wipe()
    yield
    wipe()


@pytest.fixture
def keyring_is(request):
    """Put another keyring backend in place for the test (keyring's own set_keyring)."""
    previous = keyring.get_keyring()

    def use(backend):
        keyring.set_keyring(backend)
    yield use
    keyring.set_keyring(previous)


def test_save_load_list_delete(clean, rh_home, private_keyring):
    s = rh.secret(name="openai", values={"api_key": VALUE})
    assert VALUE not in repr(s) and VALUE not in str(s)
    assert VALUE not in json.dumps(s.config())
    assert s.save() is s
    assert rh.secrets() == ["openai"]

    loaded = rh.secret("openai")  # the reference, from the store; values from the keyring
    assert (loaded.name, loaded.backend, loaded.keys) == ("openai", "keyring", ["api_key"])
    assert loaded.values == {"api_key": VALUE}

    ref = rh_home / "rns" / "secrets" / "openai.json"
    assert json.loads(ref.read_text()) == {
        "resource_type": "secret", "name": "openai", "provider": None, "backend": "keyring",
        "keys": ["api_key"], "env_vars": {}, "path": None}
    assert stat.S_IMODE(private_keyring.stat().st_mode) == 0o600
    assert stat.S_IMODE(private_keyring.parent.stat().st_mode) == 0o700
    reader = PlaintextKeyring()  # what is in the keyring's file: under rh's service
    reader.file_path = str(private_keyring)
    assert json.loads(reader.get_password("rh", "secrets/openai")) == {"api_key": VALUE}

    assert loaded.delete() is True
    assert rh.secrets() == [] and not ref.exists()
    assert reader.get_password("rh", "secrets/openai") is None
    with pytest.raises(rh.SecretNotFoundError, match="no secret saved as 'openai'"):
        rh.secret("openai")


def test_saving_over_a_secret_asks_for_overwrite(clean):
    rh.secret(name="db", values={"password": "first"}).save()
    with pytest.raises(rh.ConfigError) as e:
        rh.secret(name="db", values={"password": "second"}).save()
    assert "already saved" in str(e.value) and "overwrite=True" in str(e.value)
    assert "first" not in str(e.value) and "second" not in str(e.value)
    assert rh.secret("db").values == {"password": "first"}  # nothing changed
    rh.secret(name="db", values={"password": "second"}).save(overwrite=True)
    assert rh.secret("db").values == {"password": "second"}


@pytest.mark.parametrize("bad", ["", "a b", "../up", "-x", ".hidden", "x" * 101, "a/b", "é"])
def test_a_name_with_bad_characters_is_refused(bad):
    with pytest.raises(rh.ConfigError, match="bad secret name"):
        rh.secret(name=bad, values={"k": "v"})


def test_a_pickled_secret_never_carries_its_values(clean):
    s = rh.secret(name="pickled", values={"k": VALUE})
    assert VALUE.encode() not in pickle.dumps(s)
    assert VALUE.encode() not in cloudpickle.dumps(lambda: s.keys)  # as a function sent away
    copy = pickle.loads(pickle.dumps(s))
    assert (copy.name, copy.keys) == ("pickled", ["k"])
    with pytest.raises(rh.SecretNotFoundError, match="came here pickled.*secret.to"):
        _ = copy.values
    s.save()
    assert pickle.loads(pickle.dumps(s)).values == {"k": VALUE}  # its backend is here: read again


def test_values_must_be_text():
    with pytest.raises(rh.ConfigError, match="values map key names to text"):
        rh.secret(name="n", values={"port": 5432})


def test_an_unavailable_keyring_says_what_to_do_and_nothing_is_saved(clean, keyring_is):
    keyring_is(fail.Keyring())
    with pytest.raises(rh.SecretBackendError) as e:
        rh.secret(name="openai", values={"api_key": VALUE}).save()
    msg = str(e.value)
    assert "no keyring is available" in msg and "keyrings.alt" in msg and "rh-vault" in msg
    assert VALUE not in msg
    assert rh.secrets() == []  # no reference without its values


def test_a_locked_keyring_says_so(clean, keyring_is):
    rh.secret(name="openai", values={"api_key": VALUE}).save()
    keyring_is(LockedKeyring())
    with pytest.raises(rh.SecretBackendError, match="the keyring .*LockedKeyring.* is locked; unlock"):
        _ = rh.secret("openai").values
    with pytest.raises(rh.SecretBackendError, match="is locked"):
        rh.secret(name="other", values={"k": "v"}).save()
    assert rh.secrets() == ["openai"]


def test_a_failed_save_leaves_neither_half(clean, rh_home, private_keyring):
    """The reference cannot be written (its folder is a link to a place that is gone): the
    values written a moment before are taken back, and a secret saved before keeps its values."""
    reader = PlaintextKeyring()
    reader.file_path = str(private_keyring)
    rh.secret(name="kept", values={"token": "old-value"}).save()
    folder = rh_home / "rns" / "secrets"
    moved = folder.with_name("secrets-moved")
    folder.rename(moved)
    folder.symlink_to(rh_home / "gone")
    try:
        with pytest.raises(OSError):
            rh.secret(name="fresh", values={"token": VALUE}).save()
        assert reader.get_password("rh", "secrets/fresh") is None
        with pytest.raises(OSError):
            rh.secret(name="kept", values={"token": "new-value"}).save(overwrite=True)
        assert json.loads(reader.get_password("rh", "secrets/kept")) == {"token": "old-value"}
    finally:
        folder.unlink()
        moved.rename(folder)
    assert rh.secrets() == ["kept"] and rh.secret("kept").values == {"token": "old-value"}


def test_a_reference_without_values_says_how_to_fix_it(clean, private_keyring):
    rh.secret(name="orphan", values={"k": "v"}).save()
    rh.secret_backend("keyring").delete_values("secrets/orphan")
    with pytest.raises(rh.SecretNotFoundError) as e:
        _ = rh.secret("orphan").values
    assert "has no values for the secret 'orphan'" in str(e.value)
    assert "overwrite=True" in str(e.value) and ".delete()" in str(e.value)
    assert rh.secret("orphan").delete() is True


def test_the_backend_is_chosen_per_secret_or_by_config(clean, rh_home):
    with pytest.raises(rh.UnknownPluginItemError, match="unknown secret backend 'nowhere'"):
        rh.secret(name="v", values={"k": "v"}, backend="nowhere").save()
    config = rh_home / "config.yaml"
    try:
        rh.configs.set("secret_backend", "nowhere")
        with pytest.raises(rh.UnknownPluginItemError, match="installed secret backends: keyring"):
            rh.secret(name="v", values={"k": "v"}).save()
        saved = rh.secret(name="k", values={"k": "v"}, backend="keyring").save()
        assert saved.backend == "keyring"
    finally:
        config.unlink(missing_ok=True)
    assert rh.secrets() == ["k"]


def test_in_env_sets_the_variables(clean, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "before")
    monkeypatch.setenv("OPENAI_ORG", "before")
    s = rh.secret(name="openai", values={"api_key": VALUE, "org": "acme"})
    assert s.in_env() == ["OPENAI_API_KEY", "OPENAI_ORG"]
    assert os.environ["OPENAI_API_KEY"] == VALUE and os.environ["OPENAI_ORG"] == "acme"
    monkeypatch.setenv("MY_KEY", "before")
    assert s.in_env(env_vars={"MY_KEY": "api_key"}) == ["MY_KEY"]
    assert os.environ["MY_KEY"] == VALUE
    with pytest.raises(rh.ConfigError, match="which secret 'openai' does not have"):
        s.in_env(env_vars={"X": "nope"})
    with pytest.raises(rh.ConfigError, match="bad environment variable name 'RH_HOME'"):
        s.in_env(env_vars={"RH_HOME": "api_key"})


def test_rh_secret_commands(clean):
    out = rh_cli("secret", "set", "stripe", f"api_key={VALUE}", "account=acct_1")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "saved secret 'stripe' (keys: account, api_key)\n"
    out = rh_cli("secret", "set", "piped", "token=-", input="from-stdin\n")
    assert out.returncode == 0, out.stderr
    assert rh.secret("piped").values == {"token": "from-stdin"}

    listed = rh_cli("secret", "list").stdout
    assert "stripe" in listed and "piped" in listed and VALUE not in listed
    shown = rh_cli("secret", "get", "stripe").stdout
    assert json.loads(shown)["keys"] == ["account", "api_key"] and VALUE not in shown
    assert json.loads(rh_cli("secret", "get", "stripe", "--show").stdout)["api_key"] == VALUE

    out = rh_cli("secret", "set", "stripe", "api_key=other")
    assert out.returncode == 1 and "already saved" in out.stderr
    out = rh_cli("secret", "set", "bad name", "k=v")
    assert out.returncode == 1 and "bad secret name" in out.stderr
    out = rh_cli("secret", "get", "stripe", env={**os.environ,
                                                 "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert out.returncode == 0  # the reference alone needs no keyring
    out = rh_cli("secret", "get", "stripe", "--show",
                 env={**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert out.returncode == 1 and "no keyring is available" in out.stderr

    assert rh_cli("secret", "delete", "stripe").stdout == "deleted secret 'stripe'\n"
    assert rh.secrets() == ["piped"]
