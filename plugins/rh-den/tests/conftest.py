"""Fixtures for rh-den: a real store served by ``rh den serve`` (Hypercorn on loopback), over
SQLite and over a real PostgreSQL 15 made for the session with ``initdb``/``pg_ctl`` as the
unprivileged ``postgres`` user. Every process is stopped by the PID (or the data folder's
postmaster.pid, through ``pg_ctl stop``) of what the fixture started.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from rh_core.testing import private_home

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "userpkg"))
RH = str(Path(sys.executable).parent / "rh")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
_names = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def rh_home(tmp_path_factory):
    """A private rh home, and a private HOME for the keyring's file backend."""
    home = tmp_path_factory.mktemp("home")
    old = {k: os.environ.get(k) for k in ("HOME", "XDG_DATA_HOME", "PYTHON_KEYRING_BACKEND")}
    os.environ.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"),
                      PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring")
    with private_home(tmp_path_factory.mktemp("rh-home")) as rh:
        yield rh
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Store:
    """A running store: its URL, database, process, and an admin's token."""

    def __init__(self, db: str, folder: Path):
        self.db, self.folder = db, folder
        self.admin_token = rh_cli("den", "user", "add", "admin", "--admin", "--db", db).strip()
        self.record = folder / "serve.json"
        self.log = open(folder / "serve.log", "ab")
        self.proc = subprocess.Popen([RH, "den", "serve", "--db", db, "--port", "0",
                                      "--record", str(self.record)],
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while not (self.record.exists() and self.record.read_text()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rh den serve did not start: {self.logs()}")
            time.sleep(0.05)
        self.url = json.loads(self.record.read_text())["url"]
        self.admin = self.http(self.admin_token)

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def user(self, prefix: str = "u", email: bool = False) -> tuple[str, str]:
        """A new user (unique in the session) and their token."""
        name = f"{prefix}{next(_names)}"
        body = {"name": name, "email": f"{name}@example.com" if email else None}
        r = self.admin.post("/v1/users", json=body)
        assert r.status_code == 201, r.text
        return name, r.json()["token"]

    def logs(self) -> str:
        return (self.folder / "serve.log").read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def rh_cli(*args: str, check: bool = True, input: str | None = None) -> str:
    done = subprocess.run([RH, *args], capture_output=True, text=True, input=input, timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"rh {' '.join(args)} failed: {done.stderr}")
    return done.stdout


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A PostgreSQL 15 cluster of the session: password logins (scram) on 127.0.0.1; its URL."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 is not installed: apt-get install postgresql (bash "
                    "scripts/test does it)", pytrace=False)
    # Outside pytest's own temporary folders (private to root): the postgres user works here.
    folder = Path(tempfile.mkdtemp(prefix="rh-den-pg-"))
    os.chmod(folder, 0o777)
    data, pwfile = folder / "data", folder / "pw"
    pwfile.write_text("den-pw-31\n")
    os.chmod(pwfile, 0o644)
    port = free_port()

    def as_postgres(*cmd):
        done = subprocess.run(["runuser", "-u", "postgres", "--", *map(str, cmd)],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {done.stderr or done.stdout}")

    as_postgres(PG_BIN / "initdb", "-D", data, "-U", "rh", "--auth-local=trust",
                "--auth-host=scram-sha-256", f"--pwfile={pwfile}")
    as_postgres(PG_BIN / "pg_ctl", "-D", data, "-w", "-l", folder / "pg.log", "-o",
                f"-k {folder} -p {port} -c listen_addresses=127.0.0.1", "start")
    try:
        as_postgres(PG_BIN / "createdb", "-h", folder, "-p", port, "-U", "rh", "den")
        yield f"postgresql://rh:den-pw-31@127.0.0.1:{port}/den"
    finally:
        as_postgres(PG_BIN / "pg_ctl", "-D", data, "-m", "fast", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def sqlite_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("den-sqlite")
    store = Store(str(folder / "den.sqlite"), folder)
    yield store
    store.stop()


@pytest.fixture(scope="session")
def pg_store(tmp_path_factory, postgres):
    store = Store(postgres, tmp_path_factory.mktemp("den-pg"))
    yield store
    store.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request):
    """The same test over both databases."""
    return request.getfixturevalue("sqlite_store" if request.param == "sqlite" else "pg_store")


@pytest.fixture
def logged_in(sqlite_store, rh_home):
    """A new user logged in on this machine (rh.login) to the SQLite store; logged out after."""
    import rh_core as rh

    name, token = sqlite_store.user("me")
    assert rh.login(sqlite_store.url, token)["user"] == name
    yield name, token
    rh.logout()


def chromium() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.fail("Chromium is not installed: apt-get install chromium chromium-driver (bash "
                    "scripts/test does it)", pytrace=False)
    return browser, driver
