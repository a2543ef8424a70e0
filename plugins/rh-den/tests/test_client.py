"""What a user does with ``@/...`` names from Python and from ``rh``: log in, save a function
that runs on the local cluster, load and call it, share it, versions and conflicts, folders,
logging out; against a real store over HTTP and a real local cluster."""

from __future__ import annotations

import json
import os
import subprocess

import pyarrow as pa
import pytest
from conftest import RH, rh_cli

import rh_core as rh
from rh_core.errors import AuthError


@pytest.fixture(scope="module")
def local(rh_home):
    cluster = rh.cluster("local").up_if_not()
    yield cluster
    cluster.down()


def summer(a, b):
    return a + b


def test_save_load_call_share_history(logged_in, local, sqlite_store):
    me, _ = logged_in
    assert rh.whoami() == me
    assert rh.current_folder() == f"@/{me}"  # after login, bare names go to the user's folder
    f = rh.function(summer).to(local)
    f.save(f"@/{me}/summer")
    assert rh.exists(f"@/{me}/summer") and rh.exists("@/summer")  # @/x means @/<whoami>/x
    g = rh.load(f"@/{me}/summer")
    assert g(1, 2) == 3
    bob, tb = sqlite_store.user("bob")
    f.share([bob], access_level="read")
    assert sqlite_store.http(tb).get(f"/v1/resources/{me}/summer").status_code == 200
    f.revoke([bob])
    assert sqlite_store.http(tb).get(f"/v1/resources/{me}/summer").status_code == 404
    f.share(visibility="public")
    assert sqlite_store.http().get(f"/v1/resources/{me}/summer").status_code == 200
    # A change is a new version; the old one loads by number.
    f2 = rh.function(summer, name="summer2").to(local)
    f2.save(f"@/{me}/summer")
    history = f2.history()
    assert [h["version"] for h in history] == [2, 1] and history[0]["author"] == me
    old = rh.load(f"@/{me}/summer", version=1)
    assert old.server_name == "summer"
    assert (f"@/{me}/summer", "function") in rh.resources(f"@/{me}")
    assert f2.delete_configs() and not rh.exists(f"@/{me}/summer")


def test_bare_names_and_access_type_alias(logged_in, local, sqlite_store):
    me, _ = logged_in
    f = rh.function(summer).to(local)
    f.save("bare")  # the current folder: @/<me>
    assert f.rns_address == f"@/{me}/bare"
    bob, tb = sqlite_store.user("bob")
    f.share(bob, access_type="write")
    shares = sqlite_store.http(tb).get(f"/v1/shares/{me}/bare").json()["shares"]
    assert shares == [{"principal": bob, "kind": "user", "access_level": "write"}]


def test_two_writers_conflict(logged_in, local):
    me, _ = logged_in
    rh.function(summer).to(local).save(f"@/{me}/racy")
    first, second = rh.load(f"@/{me}/racy"), rh.load(f"@/{me}/racy")
    first.stream_logs = True
    first.save()
    second.server_name = "other"
    with pytest.raises(rh.ConflictError) as e:
        second.save()
    assert e.value.base_version == 1 and e.value.latest == 2
    assert "version 2" in str(e.value) and "version 1" in str(e.value)
    assert rh.load(f"@/{me}/racy").stream_logs is True  # the first writer's save stands


def test_cli_login_whoami_ls_logout(sqlite_store, local):
    name, token = sqlite_store.user("cli")
    out = rh_cli("login", sqlite_store.url, "--token", "-", input=token + "\n")
    assert f"as {name}" in out
    assert rh_cli("whoami").strip() == name
    # The token is in the secret backend, never in config.yaml.
    assert token not in rh.configs.path().read_text()
    client = sqlite_store.http(token)
    client.put(f"/v1/resources/{name}/thing", json={"config": {"resource_type": "function"}})
    assert f"@/{name}/thing" in rh_cli("ls", f"@/{name}")
    rh_cli("logout")
    gone = rh_cli("whoami", check=False)
    assert gone == ""


def test_clear_errors(sqlite_store, rh_home):
    with pytest.raises(AuthError) as e:
        rh.login(sqlite_store.url, "rhd_" + "n" * 43)
    assert "not known to this store" in str(e.value) and sqlite_store.url in str(e.value)
    with pytest.raises(rh.StoreUnavailableError) as e:
        rh.login("http://127.0.0.1:9", "rhd_whatever")
    assert "http://127.0.0.1:9" in str(e.value) and "rh login" in str(e.value)
    name, token = sqlite_store.user("err")
    rh.login(sqlite_store.url, token)
    try:
        with pytest.raises(rh.RhError) as e:
            rh.function(summer, name="x").save("@/nobody-at-all/x")
        assert "no user or group 'nobody-at-all'" in str(e.value)
        with pytest.raises(rh.ResourceNotFoundError) as e:
            rh.load(f"@/{name}/missing")
        assert f"@/{name}/missing" in str(e.value)
        with pytest.raises(rh.ConfigError):
            rh.load(f"@/{name}/bad name")
    finally:
        rh.logout()
    assert "RH_DEN_TOKEN" not in os.environ
    saved = json.dumps(dict(os.environ))
    assert token not in saved


def test_token_commands_and_rotating_the_login(sqlite_store):
    name, token = sqlite_store.user("tok")
    rh_cli("login", sqlite_store.url, "--token", "-", input=token + "\n")
    try:
        made = rh_cli("den", "token", "create", "--name", "ci", "--expires", "30d").strip()
        assert made.startswith("rhd_")
        listed = json.loads(rh_cli("den", "token", "list", "--json"))
        ci = next(t for t in listed if t["name"] == "ci")
        assert ci["expires"] and not ci["revoked"] and made not in json.dumps(listed)
        new = rh_cli("den", "token", "rotate", ci["id"]).strip()
        assert sqlite_store.http(made).get("/v1/whoami").status_code == 401
        assert sqlite_store.http(new).get("/v1/whoami").json()["user"] == name
        new_id = next(t["id"] for t in json.loads(rh_cli("den", "token", "list", "--json"))
                      if t["name"] == "ci" and not t["revoked"])
        assert f"revoked token {new_id}" in rh_cli("den", "token", "revoke", new_id)
        assert sqlite_store.http(new).get("/v1/whoami").status_code == 401
        # Rotating the token this machine logged in with keeps it logged in, with the successor.
        login_id = sqlite_store.http(token).get("/v1/whoami").json()["token_id"]
        rh_cli("den", "token", "rotate", login_id)
        assert sqlite_store.http(token).get("/v1/whoami").status_code == 401
        assert rh_cli("den", "token", "list", "--json")  # still logged in
        # Only admins add users through the API.
        denied = subprocess.run([RH, "den", "user", "add", "zed"], capture_output=True, text=True)
        assert denied.returncode == 1 and "only an admin" in denied.stderr
    finally:
        rh_cli("logout")


def test_ci_logs_in_with_environment_variables(sqlite_store, local, monkeypatch):
    name, token = sqlite_store.user("ci")
    monkeypatch.setenv("RH_DEN_URL", sqlite_store.url)
    monkeypatch.setenv("RH_DEN_TOKEN", token)
    assert rh.whoami() == name
    rh.function(summer).to(local).save("@/from-ci")
    assert rh.load(f"@/{name}/from-ci")(2, 5) == 7


def test_rh_plugins_lists_the_store():
    out = rh_cli("plugins", "--json")
    den = next(p for p in json.loads(out) if p["distribution"] == "rh-den")
    assert {"rh_rns_stores", "rh_cli_commands", "rh_server_auth_check"} <= set(den["hooks"])


def test_data_by_at_names(logged_in, local, tmp_path):
    """Folders, blobs and tables are saved and loaded by ``@`` names like any resource: the store
    keeps where the data lives (here: the local cluster and this machine), the bytes stay there."""
    me, _ = logged_in
    src = tmp_path / "raw"
    src.mkdir()
    (src / "a.txt").write_text("alpha")
    on_cluster = rh.folder(path=str(src)).to(local)
    on_cluster.save(f"@/{me}/datasets/raw")
    blob = rh.blob(data=b"bytes here", path=str(tmp_path / "b.bin"))
    blob.save("@/blob")  # @/x means @/<whoami>/x
    table = rh.table(data=pa.table({"x": [1, 2, 3]}), path=str(tmp_path / "t"))
    table.save(f"@/{me}/datasets/t")
    assert sorted(rh.resources(f"@/{me}/datasets")) == [(f"@/{me}/datasets/raw", "folder"),
                                                          (f"@/{me}/datasets/t", "table")]
    again = rh.folder(name=f"@/{me}/datasets/raw")
    assert again.system.name == local.name and again.get("a.txt") == b"alpha"
    assert rh.load(f"@/{me}/blob").data == b"bytes here"
    assert rh.table(name=f"@/{me}/datasets/t").data.column("x").to_pylist() == [1, 2, 3]
