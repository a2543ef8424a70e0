"""A plugin that implements every rh hook, for the test suite.

Behaviour is switched on by environment variables so that, while installed, it changes nothing
for other tests: RH_TESTPLUGIN_MARKER (file the server hooks append to), RH_TESTPLUGIN_STORE
(folder of the ``@`` store).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar

import attrs

from rh_core import hookimpl
from rh_core.builtin.connections import NoneConnection
from rh_core.builtin.local import LocalCluster, LocalProvider
from rh_core.plugin.interfaces import AccessLevel, PackageInstaller, RnsStore, SecretBackend


@attrs.define(kw_only=True, slots=False)
class TestCluster(LocalCluster):
    """A local cluster under another provider name."""

    subtype: ClassVar[str] = "testprov"
    name: str | None = None
    #: A field only this provider's clusters have.
    flavour: str = "vanilla"
    #: The server's idle rule, passed on by ``Cluster.server_settings`` as providers' fields are.
    autostop_mins: float | None = None


class TestProvider(LocalProvider):
    name = "testprov"
    cluster_class = TestCluster


class TestConnection(NoneConnection):
    """Plain HTTP, but leaves a trace that it was used."""

    name = "testconn"

    def open(self):
        marker = os.environ.get("RH_TESTPLUGIN_MARKER")
        if marker:
            with open(marker, "a") as f:
                f.write("connection opened\n")
        return super().open()


class EchoInstaller(PackageInstaller):
    """``echo:NAME`` writes a module NAME.py with VALUE = NAME into the env's venv."""

    name = "echo"

    def install(self, spec: str, target) -> None:
        site = next(Path(target.venv).glob("lib/python*/site-packages"))
        (site / f"{spec}.py").write_text(f"VALUE = {spec!r}\n")
        target.log(f"echo-installed {spec}")


class FolderStore(RnsStore):
    """``@``: JSON files in $RH_TESTPLUGIN_STORE."""

    prefix = "@"

    def _path(self, path: str) -> Path:
        return Path(os.environ["RH_TESTPLUGIN_STORE"]) / f"{path.replace('/', '__')}.json"

    def load(self, path):
        p = self._path(path)
        return json.loads(p.read_text()) if p.exists() else None

    def save(self, path, config):
        self._path(path).write_text(json.dumps(config))

    def delete(self, path):
        p = self._path(path)
        existed = p.exists()
        p.unlink(missing_ok=True)
        return existed

    def list(self, folder):
        return sorted(p.stem for p in Path(os.environ["RH_TESTPLUGIN_STORE"]).glob("*.json"))

    # Accounts, as a store with users has them: the token goes to the secret backend, the
    # user's name to a file beside the configs.
    def login(self, url, token):
        from rh_core.names.secrets import secret_backend

        secret_backend().set(f"testplugin:{url}", token)
        (Path(os.environ["RH_TESTPLUGIN_STORE"]) / "_user").write_text("tester")
        return "tester"

    def whoami(self):
        user = Path(os.environ["RH_TESTPLUGIN_STORE"]) / "_user"
        return user.read_text() if user.exists() else None


class MemorySecrets(SecretBackend):
    name = "memory"
    values: ClassVar[dict] = {}

    def get(self, key):
        return self.values.get(key)

    def set(self, key, value):
        self.values[key] = value

    def delete(self, key):
        self.values.pop(key, None)


@hookimpl
def rh_compute_providers(register):
    register(TestProvider)


@hookimpl
def rh_connection_types(register):
    register(TestConnection)


@hookimpl
def rh_package_installers(register):
    register(EchoInstaller)


@hookimpl
def rh_rns_stores(register):
    if os.environ.get("RH_TESTPLUGIN_STORE"):
        register(FolderStore())


@hookimpl
def rh_secret_backends(register):
    register(MemorySecrets)


@hookimpl
def rh_cli_commands(register):
    import typer  # the command line's own library: only when rh's command line asks

    group = typer.Typer(name="testplugin", help="The test plugin's commands.")

    @group.command("hello")
    def hello(who: str = "world") -> None:
        """Say hello."""
        typer.echo(f"hello {who} from the test plugin")

    register(group)
    # A group named like one of rh's own commands is not added.
    register(typer.Typer(name="ls", help="never shown"))


def _mark(line: str) -> None:
    marker = os.environ.get("RH_TESTPLUGIN_MARKER")
    if marker:
        with open(marker, "a") as f:
            f.write(line + "\n")


@hookimpl
def rh_server_startup(server):
    _mark(f"startup {server.cluster_name} {server.port}")


@hookimpl
def rh_server_shutdown(server):
    _mark(f"shutdown {server.cluster_name}")


@hookimpl
def rh_server_idle(server, idle_seconds):
    _mark(f"idle {server.cluster_name} {idle_seconds:.1f}")


@hookimpl
def rh_server_auth_check(token, resource, access, server):
    if token == "let-me-read":
        return access == AccessLevel.READ
    return None
