"""The record of a bring-your-own cluster."""

from __future__ import annotations

from typing import ClassVar

import attrs

from rh_byo import operations
from rh_core.errors import ConfigError
from rh_core.names.secrets import secret_backend
from rh_core.resources.cluster import Cluster

#: Credentials kept in memory only: a saved config holds ``<key>_secret``, a reference to the
#: secret backend ("keyring:byo/<cluster>/<key>"), and never the value.
SECRET_KEYS = ("ssh_password", "ssh_private_key_passphrase")
CRED_KEYS = {"ssh_user", "ssh_private_key", "ssh_port", "ssh_proxy_jump", "ssh_proxy_command",
             "ssh_host_alias", *SECRET_KEYS, *(f"{k}_secret" for k in SECRET_KEYS)}


def _creds(inst, attr, value):
    unknown = set(value or {}) - CRED_KEYS
    if unknown:
        raise ConfigError(f"unknown ssh_creds key(s) {sorted(unknown)}; known: {sorted(CRED_KEYS)}")
    for k in SECRET_KEYS:
        ref = value.get(f"{k}_secret")
        if ref is not None and (not isinstance(ref, str) or ":" not in ref):
            raise ConfigError(f"ssh_creds {k}_secret must be 'backend:key' (e.g. "
                              f"'keyring:byo/<cluster>/{k}')")


def _without_secrets(creds: dict) -> dict:
    return {k: v for k, v in creds.items() if k not in SECRET_KEYS}


def _creds_repr(creds: dict) -> str:
    return repr({k: "***" if k in SECRET_KEYS else v for k, v in creds.items()})


@attrs.define(kw_only=True, slots=False)
class BYOCluster(Cluster):
    """Machines you can SSH into; the first address is the head node."""

    subtype: ClassVar[str] = "byo"

    server_connection_type: str = "ssh"
    #: How to log in: ssh_user, ssh_private_key, ssh_port, ssh_proxy_jump, ssh_proxy_command,
    #: ssh_host_alias (a Host of ~/.ssh/config); ssh_password and ssh_private_key_passphrase
    #: stay in memory (see SECRET_KEYS).
    ssh_creds: dict = attrs.field(factory=dict, converter=lambda v: dict(v or {}),
                                  validator=_creds, repr=_creds_repr)
    #: Refuse to sync a working directory larger than this.
    sync_limit_mb: int = 1024
    #: Several nodes: the addresses the nodes reach each other at, in the order of ``ips``, when
    #: those differ from the ones this machine uses (e.g. private addresses in a cloud network).
    internal_ips: list[str] | None = None
    #: Several nodes: the port of the Ray head (GCS) on the head node.
    ray_port: int = 6379
    #: Several nodes: extra ``ray start`` flags for every node, e.g. ["--num-gpus=1"].
    ray_args: list[str] = attrs.field(factory=list)

    def __attrs_post_init__(self):
        if not self.ips:
            raise ConfigError("a byo cluster needs ips=[head, ...]")
        if self.internal_ips is not None and len(self.internal_ips) != len(self.ips):
            raise ConfigError(f"internal_ips has {len(self.internal_ips)} address(es) but ips has "
                              f"{len(self.ips)}: give one internal address per node, in order")

    def run(self, commands: list[str] | str, node: str | int = 0) -> list[tuple[int, str, str]]:
        """Run shell commands on a node (index, address, or "all"); [(code, stdout, stderr)]."""
        return operations.run(self.provider, commands, node)

    def run_setup(self, commands: list[str] | str) -> list[tuple[int, str, str]]:
        """Run setup commands once per cluster: each command that already ran (recorded on the
        head node) is skipped. A failing command is not recorded and raises."""
        return operations.run_setup(self.provider, commands)

    def run_python(self, lines: list[str] | str, node: str | int = 0) -> list[tuple[int, str, str]]:
        """Run Python code with the cluster's Python (the server's virtualenv)."""
        return operations.run_python(self.provider, lines, node)

    def ssh(self, command: str | None = None) -> int:
        """An interactive shell on the head node (or one command); returns its exit code."""
        return operations.ssh(self.provider, command)

    def ssh_tunnel(self, local_port: int | None, remote_port: int) -> int:
        """Forward a local port to ``remote_port`` on the head node; returns the local port."""
        return self.provider.node.forward(remote_port, local_port)

    def notebook(self, port: int = 8888) -> str:
        """JupyterLab on the head node through a tunnel; returns the URL to open."""
        return operations.notebook(self.provider, port)

    # ------------------------------------------------------------------ secrets

    def config(self) -> dict:
        """The config, without the password or passphrase (only their references once saved):
        it is written to disk and sent to the server with every function."""
        config = super().config()
        config["ssh_creds"] = _without_secrets(config["ssh_creds"])
        return config

    def save(self, name: str | None = None) -> BYOCluster:
        """Save the config; a password or passphrase goes to the keyring (key
        ``byo/<cluster>/<cred>``) and the config records only where it is."""
        wanted = (name or self.name or "").rsplit("/", 1)[-1].lstrip("~^@")
        secrets = {k: self.ssh_creds[k] for k in SECRET_KEYS if self.ssh_creds.get(k)}
        if secrets and wanted and (not self.name or wanted == self.short_name):
            backend = secret_backend("keyring")
            refs = {}
            for k, value in secrets.items():
                backend.set(f"byo/{wanted}/{k}", value)
                refs[f"{k}_secret"] = f"keyring:byo/{wanted}/{k}"
            self.ssh_creds = {**self.ssh_creds, **refs}
        return super().save(name)

    def delete_configs(self) -> bool:
        """Delete the saved config, and the secrets :meth:`save` put in the keyring."""
        deleted = super().delete_configs()
        for k in SECRET_KEYS:
            ref = self.ssh_creds.get(f"{k}_secret", "")
            if deleted and ref == f"keyring:byo/{self.short_name}/{k}":
                secret_backend("keyring").delete(ref.partition(":")[2])
        return deleted

    def login_creds(self) -> dict:
        """``ssh_creds`` with saved secrets read back from their backend (for logging in: keep
        the result in memory only)."""
        creds = {k: v for k, v in self.ssh_creds.items() if not k.endswith("_secret")}
        for k in SECRET_KEYS:
            ref = self.ssh_creds.get(f"{k}_secret")
            if ref and not creds.get(k):
                backend, _, key = ref.partition(":")
                value = secret_backend(backend).get(key)
                if value is None:
                    raise ConfigError(
                        f"cluster {self.short_name!r} keeps its {k} in the {backend} secret "
                        f"backend under {key!r}, but it is not there: give ssh_creds[{k!r}] "
                        f"again and save the cluster")
                creds[k] = value
        return creds

    def __getstate__(self):
        # A pickled cluster (inside a pickled function, say) may travel to a node.
        state = super().__getstate__()
        state["ssh_creds"] = _without_secrets(state.get("ssh_creds", {}))
        return state
