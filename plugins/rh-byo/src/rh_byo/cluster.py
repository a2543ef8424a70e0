"""The record of a bring-your-own cluster."""

from __future__ import annotations

from typing import ClassVar

import attrs

from rh_core.errors import ConfigError
from rh_core.resources.cluster import Cluster

CRED_KEYS = {"ssh_user", "ssh_private_key", "ssh_port", "ssh_proxy_jump", "ssh_proxy_command",
             "ssh_host_alias", "ssh_password"}


def _creds(inst, attr, value):
    unknown = set(value or {}) - CRED_KEYS
    if unknown:
        raise ConfigError(f"unknown ssh_creds key(s) {sorted(unknown)}; known: {sorted(CRED_KEYS)}")
    if value and "ssh_password" in value:
        raise ConfigError("do not put a password in ssh_creds (configs are saved as plain "
                          "JSON): use a key, or ssh-agent")


@attrs.define(kw_only=True, slots=False)
class BYOCluster(Cluster):
    """Machines you can SSH into; the first address is the head node."""

    subtype: ClassVar[str] = "byo"

    server_connection_type: str = "ssh"
    #: How to log in: ssh_user, ssh_private_key, ssh_port, ssh_proxy_jump, ssh_proxy_command,
    #: ssh_host_alias (a Host of ~/.ssh/config). Never a password.
    ssh_creds: dict = attrs.field(factory=dict, validator=_creds)
    #: Refuse to sync a working directory larger than this.
    sync_limit_mb: int = 1024

    def __attrs_post_init__(self):
        if not self.ips:
            raise ConfigError("a byo cluster needs ips=[head, ...]")

    def run(self, commands: list[str] | str, node: str | int = 0) -> list[tuple[int, str, str]]:
        """Run shell commands on a node (index, address, or "all"); [(code, stdout, stderr)]."""
        return self.provider.run(commands, node)

    def run_setup(self, commands: list[str] | str) -> list[tuple[int, str, str]]:
        """Run setup commands once per cluster: each command that already ran (recorded on the
        head node) is skipped. A failing command is not recorded and raises."""
        return self.provider.run_setup(commands)

    def run_python(self, lines: list[str] | str, node: str | int = 0) -> list[tuple[int, str, str]]:
        """Run Python code with the cluster's Python (the server's virtualenv)."""
        return self.provider.run_python(lines, node)

    def ssh(self, command: str | None = None) -> int:
        """An interactive shell on the head node (or one command); returns its exit code."""
        return self.provider.ssh(command)

    def ssh_tunnel(self, local_port: int | None, remote_port: int) -> int:
        """Forward a local port to ``remote_port`` on the head node; returns the local port."""
        return self.provider.node.forward(remote_port, local_port)

    def notebook(self, port: int = 8888) -> str:
        """JupyterLab on the head node through a tunnel; returns the URL to open."""
        return self.provider.notebook(port)
