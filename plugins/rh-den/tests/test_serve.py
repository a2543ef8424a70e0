"""``rh den serve`` and the operator's commands, run as a user runs them: clear errors for a
second server on the same SQLite file, a database that cannot be written, a wrong PostgreSQL
password (never echoed back), a port in use; users and groups added with --db."""

from __future__ import annotations

import subprocess

from conftest import RH, rh_cli


def run(*args, timeout=30):
    return subprocess.run([RH, *args], capture_output=True, text=True, timeout=timeout)


def test_one_server_per_sqlite_file(sqlite_store):
    second = run("den", "serve", "--db", sqlite_store.db, "--port", "0")
    assert second.returncode == 1
    assert "already served by rh den serve" in second.stderr
    assert str(sqlite_store.proc.pid) in second.stderr


def test_database_errors(tmp_path, postgres):
    missing = run("den", "user", "add", "x", "--db", str(tmp_path / "no" / "den.sqlite"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    # A database the store's login may read but not write (root writes any SQLite file, so
    # this is a PostgreSQL role with SELECT only).
    import psycopg

    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("CREATE ROLE reader LOGIN PASSWORD 'reader-pw'")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader")
    reader = postgres.replace("rh:den-pw-31", "reader:reader-pw")
    bad = run("den", "user", "add", "y", "--db", reader)
    assert bad.returncode == 1 and "cannot be written" in bad.stderr, bad.stderr
    assert "reader-pw" not in bad.stderr
    wrong = postgres.replace("den-pw-31", "wrong-pw-77")
    r = run("den", "user", "add", "z", "--db", wrong)
    assert r.returncode == 1 and "password authentication failed" in r.stderr
    assert "wrong-pw-77" not in r.stderr and "***" in r.stderr
    r = run("den", "serve", "--db", "mysql://u@h/db")
    assert r.returncode == 1 and "postgresql://" in r.stderr


def test_port_in_use(sqlite_store, tmp_path):
    port = sqlite_store.url.rsplit(":", 1)[1]
    r = run("den", "serve", "--db", str(tmp_path / "other.sqlite"), "--port", port)
    assert r.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in r.stderr


def test_users_and_groups_with_db(tmp_path):
    db = str(tmp_path / "ops.sqlite")
    token = rh_cli("den", "user", "add", "alice", "--admin", "--db", db, "--email",
                   "alice@example.com").strip()
    assert token.startswith("rhd_") and len(token) > 40
    rh_cli("den", "user", "add", "bob", "--db", db)
    assert "team: alice, bob" in rh_cli("den", "group", "add", "team", "--members", "alice,bob",
                                        "--db", db)
    dup = run("den", "user", "add", "team", "--db", db)
    assert dup.returncode == 1 and "taken" in dup.stderr
    bad = run("den", "user", "add", "Bad Name", "--db", db)
    assert bad.returncode == 1 and "bad user name" in bad.stderr
    unknown = run("den", "group", "add", "g2", "--members", "carol", "--db", db)
    assert unknown.returncode == 1 and "no user 'carol'" in unknown.stderr
    listed = rh_cli("den", "user", "list", "--db", db)
    assert "alice\talice@example.com\tadmin" in listed and "bob" in listed
