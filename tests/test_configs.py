"""The user's defaults, ``~/.rh/config.yaml`` (``$RH_HOME/config.yaml`` here): ``rh.configs``
and ``rh config``, ``RH_<KEY>`` overrides, clear errors for bad files and values, no secret ever
written there, and sharing defaults where the shared store ``@`` is (and is not) installed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import rh_core as rh

RH = Path(sys.executable).with_name("rh")


def rh_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(RH), *args], capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture
def config(rh_home):
    """The config file, removed before and after the test (the session's rh home is shared)."""
    path = rh_home / "config.yaml"
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


def test_defaults_set_get_all_unset(config):
    assert rh.configs.get("default_autostop") == -1
    assert rh.configs.get("use_spot") is False
    assert rh.configs.get("secret_backend") == "keyring"
    assert rh.configs.get("den_url", "https://none") == "https://none"
    assert not config.exists()

    rh.configs.set("use_spot", True)
    rh.configs.set("default_autostop", 30)
    assert rh.configs.get("use_spot") is True
    assert rh.configs.all()["default_autostop"] == 30
    assert set(rh.configs.all()) >= {"default_folder", "default_provider", "default_region",
                                     "default_autostop", "use_spot", "secret_backend", "den_url"}
    assert config.read_text() == "default_autostop: 30\nuse_spot: true\n"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert rh.configs.sources()["use_spot"] == "file"
    assert rh.configs.sources()["default_region"] == "default"

    assert rh.configs.unset("use_spot") is True
    assert rh.configs.unset("use_spot") is False
    assert rh.configs.get("use_spot") is False


def test_environment_variables_override_the_file(config, monkeypatch):
    rh.configs.set("default_autostop", 30)
    monkeypatch.setenv("RH_DEFAULT_AUTOSTOP", "5")
    monkeypatch.setenv("RH_USE_SPOT", "true")
    assert rh.configs.get("default_autostop") == 5
    assert rh.configs.get("use_spot") is True
    assert rh.configs.sources()["default_autostop"] == "env RH_DEFAULT_AUTOSTOP"
    assert "default_autostop: 30" in config.read_text()  # the file keeps its own value

    monkeypatch.setenv("RH_USE_SPOT", "maybe")
    with pytest.raises(rh.ConfigError, match="RH_USE_SPOT: .*use_spot must be true or false"):
        rh.configs.get("use_spot")


def test_an_unknown_key_or_a_wrong_type_names_the_file_the_key_and_the_known_keys(config):
    config.write_text("default_autostop: 30\nautostop_minutes: 5\n")
    with pytest.raises(rh.ConfigError) as e:
        rh.configs.get("default_autostop")
    msg = str(e.value)
    assert str(config) in msg and "unknown key 'autostop_minutes'" in msg
    assert "known keys: default_folder, default_provider" in msg

    config.write_text("use_spot: sometimes\n")
    with pytest.raises(rh.ConfigError) as e:
        rh.configs.all()
    msg = str(e.value)
    assert str(config) in msg and "use_spot must be true or false, got 'sometimes' (str)" in msg
    assert "known keys:" in msg

    config.write_text("default_autostop: 1.5\n")
    with pytest.raises(rh.ConfigError, match=r"default_autostop must be a whole number, got 1.5"):
        rh.configs.all()
    config.write_text("default_folder: ~\n")  # YAML reads ~ as null
    with pytest.raises(rh.ConfigError, match=r"default_folder must be text.*quote it in YAML"):
        rh.configs.all()
    config.write_text("use_spot: [\n")
    with pytest.raises(rh.ConfigError, match=r"is not valid YAML at line 2"):
        rh.configs.all()

    config.unlink()
    with pytest.raises(rh.ConfigError, match="unknown key 'spot'; known keys"):
        rh.configs.set("spot", True)
    with pytest.raises(rh.ConfigError, match="use_spot must be true or false, got 'yes'"):
        rh.configs.set("use_spot", "yes")
    assert not config.exists()  # nothing was written by the refused calls


def test_the_file_never_holds_a_secret(config):
    with pytest.raises(rh.ConfigError) as e:
        rh.configs.set("vault_token", "hvs.CAESIJ4example")
    msg = str(e.value)
    assert "'vault_token' looks like a credential" in msg and "rh secret set" in msg
    assert "VAULT_TOKEN" in msg and "hvs.CAESIJ4example" not in msg
    with pytest.raises(rh.ConfigError, match="looks like a token or a key"):
        rh.configs.set("den_url", "sk-live-0123456789")
    config.write_text("openai_api_key: sk-abc\n")
    with pytest.raises(rh.ConfigError) as e:
        rh.configs.all()
    assert "looks like a credential" in str(e.value) and "sk-abc" not in str(e.value)


def test_writes_are_atomic_and_keep_other_keys(config):
    rh.configs.set("default_region", "us-east-1")
    rh.configs.set("default_provider", "local")
    before = config.stat().st_ino
    rh.configs.set("default_region", "eu-west-1")
    assert config.stat().st_ino != before  # replaced by rename, never rewritten in place
    assert rh.configs.get("default_provider") == "local"
    assert [p.name for p in config.parent.glob(".config.yaml.*")] == []  # no temporary file left


def test_default_folder_is_where_bare_names_go(config):
    """A new process starts in the configured folder, until rh.set_folder changes it."""
    rh.configs.set("default_folder", "~/team")
    code = ("import rh_core as rh; print(rh.current_folder()); "
            "print(rh.env(name='team-env', env_vars={'A': '1'}).save().rns_address); "
            "rh.set_folder('~'); print(rh.current_folder())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["~/team", "~/team/team-env", "~"], out.stderr
    assert rh.load("~/team/team-env").delete_configs()


def test_rh_config_commands(config):
    out = rh_cli("config", "set", "use_spot", "true")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"use_spot = true in {config}\n"
    assert rh_cli("config", "get", "use_spot").stdout == "true\n"
    assert rh_cli("config", "get", "den_url").stdout == "null\n"
    listed = rh_cli("config", "list").stdout
    assert "use_spot" in listed and "file" in listed and "default_autostop" in listed

    out = rh_cli("config", "set", "github_token", "ghp_0123456789abcdef")
    assert out.returncode == 1
    assert "looks like a credential" in out.stderr and "rh secret set" in out.stderr
    assert "ghp_0123456789abcdef" not in out.stderr + out.stdout
    assert "github_token" not in config.read_text()
    out = rh_cli("config", "set", "default_autostop", "soon")
    assert out.returncode == 1 and "default_autostop must be a whole number" in out.stderr

    out = rh_cli("config", "get", "use_spot", env={**os.environ, "RH_USE_SPOT": "false"})
    assert out.stdout == "false\n"
    assert rh_cli("config", "unset", "use_spot").stdout == f"use_spot removed from {config}\n"
    assert rh_cli("config", "get", "use_spot").stdout == "false\n"


def test_sharing_defaults_needs_the_shared_store(config):
    rh.configs.set("use_spot", True)
    for call in (rh.configs.upload_defaults, lambda: rh.login(interactive=True)):
        with pytest.raises(rh.UnknownPluginItemError) as e:
            call()
        msg = str(e.value)
        assert "unknown rns store '@'" in msg and "pip install rh-den" in msg
        assert str(config) in msg  # and where the defaults stay meanwhile


PLUGIN_SRC = Path(__file__).parent / "plugins" / "rh-testplugin"


@pytest.fixture
def shared_store(tmp_path, monkeypatch, config):
    """A shared store ``@`` (the test plugin's, JSON files in a folder), installed for the test,
    and a home folder with AWS credentials in it."""
    from rh_core.plugin import registry as plugins

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", str(PLUGIN_SRC)], check=True)
    store = tmp_path / "den"
    store.mkdir()
    monkeypatch.setenv("RH_TESTPLUGIN_STORE", str(store))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    creds = tmp_path / "home" / ".aws" / "credentials"
    creds.parent.mkdir(parents=True)
    creds.write_text("[default]\naws_access_key_id = AKIALOGIN\naws_secret_access_key = den-s3\n")
    import importlib

    importlib.invalidate_caches()
    plugins.reset()
    yield store
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", "rh-testplugin"],
                   check=True)
    plugins.reset()
    for name in rh.secrets():
        rh.secret(name).delete()


def test_login_and_upload_defaults_where_the_shared_store_is(shared_store, config):
    rh.configs.set("use_spot", True)
    assert rh.configs.upload_defaults() == "@/defaults"
    saved = json.loads((shared_store / "defaults.json").read_text())
    assert saved == {"resource_type": "defaults", "values": {"use_spot": True}}

    done = rh.login(token="den-token-4e1", interactive=False, upload_secrets=True,
                    upload_defaults=False)
    assert done == {"defaults": None, "secrets": ["aws"]}
    assert rh.secret("den").values == {"token": "den-token-4e1"}  # a secret, not a config key
    assert "den-token" not in config.read_text()
    shared = rh.secret("@/secrets/aws")
    assert (shared.provider, shared.keys) == ("aws", ["access_key", "secret_key"])
    assert shared.values["secret_key"] == "den-s3"
    assert "den-s3" not in (shared_store / "secrets__aws.json").read_text()
    rh.secret_backend("keyring").delete_values("secrets/aws")


def test_login_asks_what_to_upload(shared_store, config):
    code = "import rh_core as rh; print(rh.login())"
    out = subprocess.run([sys.executable, "-c", code], input="n\ny\n", capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Upload your defaults" in out.stdout and "Upload your aws credentials" in out.stdout
    assert out.stdout.strip().endswith("{'defaults': None, 'secrets': ['aws']}")
    assert not (shared_store / "defaults.json").exists()
    assert (shared_store / "secrets__aws.json").exists()
    rh.secret_backend("keyring").delete_values("secrets/aws")
