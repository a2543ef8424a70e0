"""The plugin surface, with a real plugin distribution pip-installed into this environment.

``tests/plugins/rh-testplugin`` implements every hook; each ``test_hook_*`` test below exercises
one hook through what a user does (a guard test checks that none is missing).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import pytest
import userfns

import rh_core as rh
from rh_core.plugin import registry as plugins

PLUGIN_SRC = Path(__file__).parent / "plugins" / "rh-testplugin"
HOOKS = sorted(name for name, caller in vars(plugins.get_plugin_manager(autoload=False).hook).items()
               if caller.has_spec())


@pytest.fixture(scope="module")
def testplugin():
    """pip-installs the throwaway plugin for this module's tests, uninstalls it afterwards."""
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", str(PLUGIN_SRC)], check=True)
    importlib.invalidate_caches()
    plugins.reset()
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "-y", "rh-testplugin"],
                   check=True)
    plugins.reset()


@pytest.fixture
def marker(tmp_path, monkeypatch):
    path = tmp_path / "marker.txt"
    monkeypatch.setenv("RH_TESTPLUGIN_MARKER", str(path))
    return path


@pytest.fixture
def tp_cluster(testplugin, rh_home, request):
    cluster = rh.cluster(name=f"tp-{request.node.name[:30]}", provider="testprov")
    yield cluster
    cluster.down()


def test_builtins_are_plugins_too():
    pm = plugins.get_plugin_manager(autoload=False)
    names = {name for name, _ in pm.list_name_plugin()}
    assert set(plugins.DEFAULT_PLUGINS) <= names
    reg = plugins.Registry(pm)
    assert "local" in reg.providers and {"none", "tls"} <= set(reg.connection_types)
    assert {"pip", "reqs", "local", "git", "conda"} <= set(reg.installers)
    assert {"~", "^"} <= set(reg.rns_stores) and "keyring" in reg.secret_backends


def test_plugin_is_listed_by_cli(testplugin):
    out = subprocess.run([sys.executable, "-m", "rh_core.cli", "plugins", "--json"],
                         capture_output=True, text=True, check=True)
    listed = {p["name"]: p for p in json.loads(out.stdout)}
    tp = listed["testplugin"]
    assert tp["distribution"] == "rh-testplugin" and tp["version"] == "0.0.7"
    assert sorted(tp["hooks"]) == HOOKS  # it implements every hook
    assert listed["rh_core.builtin.connections"]["registers"] == ["connection none",
                                                                   "connection tls"]
    table = subprocess.run([sys.executable, "-m", "rh_core.cli", "plugins"],
                           capture_output=True, text=True, check=True, env={
                               **__import__("os").environ, "COLUMNS": "200"}).stdout
    assert "testplugin" in table and "0.0.7" in table


def test_autoload_can_be_disabled(testplugin, monkeypatch):
    monkeypatch.setenv("RH_DISABLE_PLUGIN_AUTOLOAD", "1")
    names = {n for n, _ in plugins.get_plugin_manager().list_name_plugin()}
    assert "testplugin" not in names
    monkeypatch.delenv("RH_DISABLE_PLUGIN_AUTOLOAD")
    assert "testplugin" in {n for n, _ in plugins.get_plugin_manager().list_name_plugin()}


def test_broken_plugin_is_skipped_with_a_warning_naming_it(monkeypatch):
    real = importlib.metadata.entry_points
    broken = importlib.metadata.EntryPoint(name="broken", value="rh_no_such_module_xyz", group="rh")

    def fake(**kw):
        eps = list(real(**kw))
        return eps + [broken] if kw.get("group") == "rh" else eps

    monkeypatch.setattr(plugins.metadata, "entry_points", fake)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = plugins.get_plugin_manager()
    assert any("rh plugin 'broken'" in str(w.message) and "skipped" in str(w.message)
               and "rh_no_such_module_xyz" in str(w.message) for w in caught)
    assert pm.get_plugin("broken") is None
    assert plugins.Registry(pm).provider("local")  # the rest still works


def test_hook_rh_compute_providers(tp_cluster):
    assert type(tp_cluster).__name__ == "TestCluster" and tp_cluster.flavour == "vanilla"
    assert rh.function(userfns.add).to(tp_cluster)(20, 22) == 42
    config = tp_cluster.config()
    assert config["subtype"] == "testprov"
    assert rh.Resource.from_config(config).flavour == "vanilla"


def test_hook_rh_connection_types(testplugin, rh_home, marker):
    c = rh.cluster(name="tp-conn", provider="testprov", server_connection_type="testconn")
    try:
        assert rh.function(userfns.add).to(c)(1, 1) == 2
        assert "connection opened" in marker.read_text()
    finally:
        c.down()


def test_hook_rh_package_installers(tp_cluster):
    env = rh.env(name="echoenv", reqs=["echo:rh_echo_mod"])
    f = rh.function(userfns.version_of).to(tp_cluster, env=env)
    _, path = f("rh_echo_mod")
    assert path.endswith("/site-packages/rh_echo_mod.py") and "/envs/" in path  # in the env's venv
    assert importlib.util.find_spec("rh_echo_mod") is None  # and only there


def test_hook_rh_rns_stores(testplugin, tmp_path, monkeypatch):
    monkeypatch.setenv("RH_TESTPLUGIN_STORE", str(tmp_path))
    plugins.reset()
    try:
        rh.env(name="team-env", reqs=["numpy"]).save("@/team/env")
        assert rh.exists("@/team/env")
        assert rh.load("@/team/env").reqs == ["numpy"]
    finally:
        monkeypatch.delenv("RH_TESTPLUGIN_STORE")
        plugins.reset()
    with pytest.raises(rh.UnknownPluginItemError, match="unknown rns store '@'"):
        rh.load("@/team/env")


def test_hook_rh_cli_commands(testplugin):
    run = [sys.executable, "-m", "rh_core.cli"]
    out = subprocess.run([*run, "testplugin", "hello", "--who", "rh"], capture_output=True,
                         text=True, check=True)
    assert out.stdout == "hello rh from the test plugin\n"
    listed = subprocess.run([*run, "--help"], capture_output=True, text=True, check=True)
    assert "testplugin" in listed.stdout and "never shown" not in listed.stdout
    assert "command group 'ls' is not added" in listed.stdout + listed.stderr


def test_hook_rh_secret_backends(testplugin):
    backend = rh.secret_backend("memory")
    backend.set("api-key", "s3cret")
    assert rh.secret_backend("memory").get("api-key") == "s3cret"
    backend.delete("api-key")
    assert backend.get("api-key") is None
    with pytest.raises(rh.UnknownPluginItemError, match="installed secret backends: keyring, memory"):
        rh.secret_backend("nope")


def test_keyring_backend_round_trip(tmp_path):
    """The built-in keyring backend, on keyrings.alt's file keyring in a temp folder."""
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    kr = PlaintextKeyring()
    kr.file_path = str(tmp_path / "keyring.cfg")
    previous = keyring.get_keyring()
    keyring.set_keyring(kr)
    try:
        b = rh.secret_backend("keyring")
        b.set("token", "abc")
        assert b.get("token") == "abc"
        # It is in the keyring's file, under rh's service: a second keyring reading only that
        # file finds it.
        reader = PlaintextKeyring()
        reader.file_path = kr.file_path
        assert reader.get_password("rh", "token") == "abc"
        b.delete("token")
        assert b.get("token") is None
        assert reader.get_password("rh", "token") is None
        b.delete("token")  # deleting what is not there is not an error
    finally:
        keyring.set_keyring(previous)


def test_hook_rh_server_startup(tp_cluster, marker):
    tp_cluster.up_if_not()
    port = httpx.URL(tp_cluster.client().info.base_url).port
    assert f"startup {tp_cluster.name} {port}" in marker.read_text()


def test_hook_rh_server_shutdown(tp_cluster, marker):
    tp_cluster.up_if_not()
    tp_cluster.down()
    assert f"shutdown {tp_cluster.name}" in marker.read_text()


def test_hook_rh_server_idle(testplugin, rh_home, marker):
    """The idle rule end to end on a real server: a cluster whose provider has ``autostop_mins``
    keeps its server while a call runs and while /health is polled, then the server calls
    ``rh_server_idle`` and stops itself (shutdown hook, record removed, exit code 0)."""
    c = rh.cluster(name="tp-idle", provider="testprov", autostop_mins=0.05)  # 3 s
    try:
        c.up_if_not()
        f = rh.function(userfns.sleep_then).to(c)
        assert f("kept", 4.5) == "kept"  # longer than the limit: a running call is work
        assert c.is_up()
        base = c.client().info.base_url
        health = httpx.get(f"{base}/health").json()
        assert health["autostop_mins"] == 0.05 and health["calls_running"] == 0
        assert 0 <= health["idle_seconds"] < 3
        pid = json.loads(c.provider.record_path.read_text())["pid"]
        for _ in range(200):  # polling /health is not work: it does not keep the server up
            if not c.provider.endpoint():
                break
            try:
                httpx.get(f"{base}/health", timeout=1)
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert not c.is_up() and not c.provider.record_path.exists()
        text = marker.read_text()
        idle = [line for line in text.splitlines() if line.startswith("idle tp-idle ")]
        assert len(idle) == 1 and float(idle[0].split()[-1]) >= 3
        assert text.index(idle[0]) < text.index("shutdown tp-idle")
        assert "idle for" in c.provider.log_path.read_text()
        assert _exit_code(pid) == 0
    finally:
        c.down()


def _exit_code(pid: int, timeout: float = 15.0) -> int:
    """The exit code of the server ``pid``, a child of this process (the local provider's)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    raise AssertionError(f"server {pid} still runs {timeout} s after its record went")


def test_hook_rh_server_auth_check(testplugin, rh_home):
    c = rh.cluster(name="tp-auth", provider="testprov", den_auth=True)
    try:
        rh.function(userfns.concat).to(c)  # the owner's client carries the owner token
        url = c.client().info.base_url
        assert httpx.get(f"{url}/health").status_code == 200  # health needs no token
        assert httpx.get(f"{url}/keys").status_code == 401
        assert httpx.get(f"{url}/concat/call?a=1&b=2").status_code == 401
        reader = {"Authorization": "Bearer let-me-read"}
        assert httpx.get(f"{url}/concat/call?a=1&b=2", headers=reader).json() == 3
        spec = {"kind": "function", "pointer": {"module": "userfns", "qualname": "add"}}
        r = httpx.put(f"{url}/other", json=spec, headers=reader)
        assert r.status_code == 403 and "other" not in c.keys()
        bad = {"Authorization": "Bearer nope"}
        assert httpx.get(f"{url}/keys", headers=bad).status_code == 403
    finally:
        c.down()
