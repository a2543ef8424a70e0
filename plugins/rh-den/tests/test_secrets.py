"""The ``den`` secret backend against a real store: values kept encrypted by the store, read by
their user from another machine (another rh home, logged in anew), never by anyone else; a
store without a key says so; rh.login uploads credentials with their values in the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import Store

import rh_core as rh


def test_a_secret_kept_by_the_store_is_read_on_another_machine(logged_in, sqlite_store,
                                                               tmp_path):
    me, token = logged_in
    s = rh.secret(name="openai", values={"api_key": "sk-den-7f3a"}, backend="den")
    s.save(folder=f"@/{me}/secrets")
    # The database holds only ciphertext.
    assert b"sk-den-7f3a" not in open(sqlite_store.db, "rb").read()
    wal = sqlite_store.db + "-wal"
    assert not os.path.exists(wal) or b"sk-den-7f3a" not in open(wal, "rb").read()
    # Another machine: its own rh home and keyring, logged in as the same user.
    other = tmp_path / "other"
    other.mkdir()
    code = ("import rh_core as rh, sys; rh.login(sys.argv[1], sys.argv[2]); "
            f"print(rh.secret('@/{me}/secrets/openai').values['api_key'])")
    env = {**os.environ, "RH_HOME": str(other / "rh"), "HOME": str(other),
           "XDG_DATA_HOME": str(other / "data")}
    out = subprocess.run([sys.executable, "-c", code, sqlite_store.url, token], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "sk-den-7f3a"
    # Nobody else reads it: another user's token gets not found, not the value.
    _, tb = sqlite_store.user("bob")
    r = sqlite_store.http(tb).get("/v1/secrets/secrets/openai")
    assert r.status_code == 404 and "sk-den" not in r.text
    assert rh.secret_backend("den").list("secrets/") == ["openai"]
    s.delete()
    assert rh.secret_backend("den").get("secrets/openai") is None


def test_login_uploads_credentials_with_their_values_in_the_store(sqlite_store, rh_home,
                                                                 tmp_path, monkeypatch):
    name, token = sqlite_store.user("up")
    creds = tmp_path / ".aws" / "credentials"
    creds.parent.mkdir()
    creds.write_text("[default]\naws_access_key_id = AKIAUPLOAD\n"
                     "aws_secret_access_key = den-upload-s3\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    done = rh.login(sqlite_store.url, token, upload_secrets=True, upload_defaults=False)
    try:
        assert "aws" in done["secrets"]
        ref = sqlite_store.http(token).get(f"/v1/resources/{name}/secrets/aws").json()["config"]
        assert ref["backend"] == "den" and "den-upload-s3" not in json.dumps(ref)
        kept = sqlite_store.http(token).get("/v1/secrets/secrets/aws").json()["value"]
        assert "den-upload-s3" in kept
    finally:
        rh.secret(f"@/{name}/secrets/aws").delete()
        rh.logout()


def test_a_store_without_a_key_keeps_no_secrets(postgres, tmp_path):
    """PostgreSQL without --secret-key-file: the secret routes say what the operator must do."""
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("CREATE DATABASE den_nokey")
    own = Store(postgres.rsplit("/", 1)[0] + "/den_nokey", tmp_path)
    try:
        _, token = own.user("nokey")
        r = own.http(token).put("/v1/secrets/x", json={"value": "v"})
        assert r.status_code == 503 and "--secret-key-file" in r.json()["error"]["message"]
    finally:
        own.stop()


@pytest.mark.parametrize("key, status", [("bad key!", 400), ("a" * 300, 400)])
def test_bad_secret_keys(sqlite_store, key, status):
    _, token = sqlite_store.user("badkey")
    assert sqlite_store.http(token).put(f"/v1/secrets/{key}",
                                        json={"value": "v"}).status_code == status
