"""The ``byo`` compute provider: bring-up over SSH (probe, wheelhouse, virtualenv, Ray on
several nodes), the server on the head node, and stopping it."""

from __future__ import annotations

import json
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rh_byo import codesync, datasync, ssh_config
from rh_byo.cluster import SECRET_KEYS, BYOCluster
from rh_byo.errors import NO_SPACE, SSHError, disk_full_error
from rh_byo.probe import probe
from rh_byo.ray_nodes import RayNodes
from rh_byo.ssh import SSHNode
from rh_core import wheelhouse
from rh_core.errors import ConfigError, ConnectionFailedError, PackageInstallError
from rh_core.paths import rh_home
from rh_core.plugin.interfaces import ComputeProvider, Endpoint
from rh_core.progress import Steps
from rh_core.transport import tls, tokens

NODE_HOME = "~/.rh"
#: Connection types that reach the server through an SSH tunnel (it stays on the node's loopback).
TUNNELS = ("ssh", "paramiko")


class BYOProvider(ComputeProvider):
    """Servers on machines reached over SSH."""

    name = "byo"
    cluster_class = BYOCluster

    def __init__(self, cluster: BYOCluster):
        super().__init__(cluster)
        self._node_cache: dict[str, SSHNode] = {}
        self.node = self._node(cluster.ips[0])
        self._home: str | None = None
        self.ray = RayNodes(self)

    @property
    def port(self) -> int:
        """The server's port on the head node."""
        c = self.cluster
        if c.server_connection_type in TUNNELS:
            return c.server_port or 32300
        if c.fronted:
            raise ConfigError("Caddy in front of a byo node is not built yet: give the cluster a "
                              "server_port other than 80/443 (the server then serves it itself)")
        return c.default_port

    @property
    def direct(self) -> bool:
        """Whether clients connect to the node's address (none/tls), not through a tunnel."""
        return self.cluster.server_connection_type not in TUNNELS

    def _endpoint(self, port: int) -> Endpoint:
        if not self.direct:
            return Endpoint("127.0.0.1", port, self._token())
        cert = self._tls_files()[0]
        return Endpoint(self.cluster.ips[0], port, self._token(),
                        tls_cert=str(cert) if cert else None)

    def _tls_files(self):
        """Certificate and key for a tls cluster: the given ones, or a self-signed pair made on
        the client (so the client knows what to trust) naming the node's addresses."""
        c = self.cluster
        if c.server_connection_type != "tls":
            return None, None
        if c.ssl_certfile and c.ssl_keyfile:
            return Path(c.ssl_certfile).expanduser(), Path(c.ssl_keyfile).expanduser()
        return tls.self_signed(rh_home() / "clusters" / c.short_name / "tls",
                               [*c.ips, *([c.domain] if c.domain else [])])

    @property
    def cluster_dir(self) -> str:
        """The cluster's folder on each node (records, logs, Ray's session)."""
        return f"{NODE_HOME}/clusters/{self.cluster.short_name}"

    def _token(self) -> str:
        return tokens.cluster_token(f"byo:{self.cluster.short_name}:{self.cluster.ips[0]}")

    def _probe(self, node: SSHNode | None = None) -> dict:
        node = node or self.node
        info = probe(node, self.cluster.short_name)
        if node is self.node:
            self._home = info.get("home_dir")
        return info

    def home_dir(self) -> str:
        """The login folder of the head node (every node's copies live under its ~/.rh)."""
        if self._home is None:
            self._probe()
        return self._home

    def endpoint(self) -> Endpoint | None:
        """The running server's endpoint (None when it does not run or the node is out of
        reach)."""
        try:
            info = self._probe()
        except SSHError:
            return None
        if info.get("alive") and info.get("record"):
            return self._endpoint(int(info["record"]["port"]))
        return None

    @property
    def multi(self) -> bool:
        """Whether the cluster has several nodes (then Ray runs on all of them)."""
        return len(self.cluster.ips) > 1

    @property
    def extras(self) -> str:
        return "server,ray" if self.multi else "server"

    def each(self, fn, nodes: list) -> list:
        """``fn(node)`` for every node, side by side; the results in order."""
        if len(nodes) == 1:
            return [fn(nodes[0])]
        with ThreadPoolExecutor(len(nodes)) as pool:
            return list(pool.map(fn, nodes))

    def up(self) -> Endpoint:
        """Bring the cluster up: one probe per node; when the installed rh differs, the
        wheelhouse shipped and installed; Ray on several nodes; the server started."""
        steps = Steps(self.cluster.short_name)
        nodes = self.ssh_nodes("all")
        more = f" and {len(nodes) - 1} more node(s)" if self.multi else ""
        with steps.step(f"connecting to {self.node.target}{more}"):
            infos = self.each(self._probe, nodes)
        ssh_config.add_host(self.cluster)  # `ssh <cluster-name>` from a terminal
        info = infos[0]
        _, key = wheelhouse.source_and_key(self.extras)
        ray_up = not self.multi or all(i.get("ray") for i in infos)
        if info.get("alive") and info.get("record") and info.get("wheelhouse") == key and ray_up:
            return self._endpoint(int(info["record"]["port"]))
        if info.get("alive"):  # a server of another rh version, or Ray is down on a node
            with steps.step("stopping the running server"):
                self._stop(int(info["alive"]))
        stale = [n for n, i in zip(nodes, infos, strict=True) if i.get("wheelhouse") != key]
        if stale:
            self._install(steps, stale)
        if self.multi and not (ray_up and not stale):
            with steps.step(f"starting Ray on {len(nodes)} nodes"):
                self.ray.start(nodes)
        with steps.step("starting the server"):
            return self._start()

    def _install(self, steps: Steps, nodes: list[SSHNode]) -> None:
        with steps.step("building the wheelhouse (cached)") as s:
            folder, key = wheelhouse.build(log=lambda _: None, extras=self.extras)
            s["note"] = f"{len(list(folder.glob('*.whl')))} wheels"

        def ship(node: SSHNode) -> None:
            node.run(f"mkdir -p {NODE_HOME}/wheelhouse")
            node.rsync(f"{folder}/", f"{NODE_HOME}/wheelhouse/")

        with steps.step("shipping wheels" + (f" to {len(nodes)} nodes" if len(nodes) > 1 else "")):
            self.each(ship, nodes)
        with steps.step("creating the virtualenv and installing the server"):
            self.each(lambda node: self._install_venv(key, node), nodes)

    def _install_venv(self, key: str, node: SSHNode | None = None) -> None:
        node = node or self.node
        script = wheelhouse.install_script(NODE_HOME, self.extras, key)
        proc = node.run(script, check=False, timeout=900)
        if proc.returncode != 0:
            if NO_SPACE in proc.stdout + proc.stderr:
                raise disk_full_error(node, "installing the rh server")
            raise PackageInstallError(
                f"installing the rh server on {node.target} failed:\n"
                f"{(proc.stdout + proc.stderr).strip()[-3000:]}")

    def _start(self) -> Endpoint:
        name = self.cluster.short_name
        d = self.cluster_dir
        den = " --den-auth" if self.cluster.den_auth else ""
        host = "127.0.0.1"
        tls_args = ""
        if self.direct:  # reachable from other machines: the server refuses this without tokens
            if not self.cluster.den_auth:
                raise ConfigError(
                    f"connection type {self.cluster.server_connection_type!r} exposes the server "
                    f"of {name!r} on {self.cluster.ips[0]}: set den_auth=True (tokens), or use "
                    f"the default 'ssh' connection")
            host = self.cluster.server_host if self.cluster.server_host not in (
                None, "127.0.0.1") else "0.0.0.0"
            cert, key = self._tls_files()
            if cert:
                self.node.run(f"mkdir -p {d}/tls && chmod 700 {d}/tls")
                self.node.rsync(str(cert), f"{d}/tls/cert.pem", [])
                self.node.rsync(str(key), f"{d}/tls/key.pem", [])
                tls_args = f" --certfile {d}/tls/cert.pem --keyfile {d}/tls/key.pem"
        ray = f"\nexport RH_RAY_ADDRESS={self.ray.address}" if self.multi else ""
        limit = f" --max-body-mb {int(self.cluster.max_body_mb)}" if self.cluster.max_body_mb else ""
        limit += "".join(f" --setting {shlex.quote(f'{k}={json.dumps(v)}')}"
                         for k, v in self.cluster.server_settings().items())
        limit += "".join(f" {shlex.quote(a)}" for a in self.server_args())
        # The owner token goes to the server on its standard input: an unexported shell variable
        # and a here-document, never the server's command line or environment.
        script = f"""
set -e
mkdir -p {d}
rm -f {d}/server.json
read -r rh_token{ray}
setsid nohup {NODE_HOME}/venv/bin/python -m rh_server --host {host} --port {self.port} \
    --name {shlex.quote(name)} --home {NODE_HOME} --record {d}/server.json --token-stdin \
    --log-file {d}/server.log{den}{tls_args}{limit} > {d}/server.out 2>&1 <<RH_TOKEN &
$rh_token
RH_TOKEN
echo $!
"""
        script = script.replace(NODE_HOME, "$HOME/.rh")
        pid = int(self.node.run(script, input=self._token() + "\n").stdout.split()[-1])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = self._probe()
            rec = info.get("record")
            if rec and rec.get("pid") == pid and info.get("alive"):
                return self._endpoint(int(rec["port"]))
            if not info.get("alive") and rec is None and time.monotonic() > deadline - 55:
                check = self.node.run(f"kill -0 {pid} 2>/dev/null && echo up || echo down").stdout
                if "down" in check:
                    break
            time.sleep(0.2)
        log = self.node.run(f"tail -n 30 {d}/server.out {d}/server.log 2>/dev/null",
                            check=False).stdout
        raise ConnectionFailedError(f"the rh server on {self.node.target} did not start:\n{log}")

    def server_args(self) -> list[str]:
        """More arguments for ``rh_server`` on the head node (a provider built on this one adds
        its own, e.g. ``--autostop-mins``)."""
        return []

    def _stop(self, pid: int) -> None:
        self.node.run(f"kill {pid} 2>/dev/null; for i in $(seq 100); do kill -0 {pid} 2>/dev/null"
                      f" || exit 0; sleep 0.1; done; kill -9 {pid} 2>/dev/null; true")

    def down(self) -> None:
        """Stop the server (and Ray on every node), then close every node's SSH connection
        (the OpenSSH master, or paramiko's); ``ssh <cluster-name>`` goes with it."""
        ssh_config.remove_host(self.cluster.short_name)
        try:
            info = self._probe()
        except SSHError:
            return
        if info.get("alive"):
            self._stop(int(info["alive"]))
        self.node.run(f"rm -f {self.cluster_dir}/server.json", check=False)
        if self.multi:
            self.each(self.ray.stop, self.ssh_nodes("all"))
        for node in self.ssh_nodes("all"):
            node.close()

    def restart_server(self) -> Endpoint:
        """A new server process on the head node; Ray keeps running on every node."""
        info = self._probe()
        if info.get("alive"):
            self._stop(int(info["alive"]))
        return self.up()

    def server_log(self) -> str:
        """The server's own log on the head node."""
        return self.node.run(f"cat {self.cluster_dir}/server.log 2>/dev/null", check=False).stdout

    def nodes(self) -> list[str]:
        """The nodes' addresses, head first."""
        return list(self.cluster.ips)

    def sync_code(self, local_root: str) -> str:
        """Copy the code root to every node (see :mod:`rh_byo.codesync`); its path there."""
        return codesync.sync_code(self, local_root)

    def copy_to(self, local_path: str, remote_path: str, folder: bool) -> bool:
        """Data to the head node with rsync (see :mod:`rh_byo.datasync`)."""
        return datasync.copy_to(self, local_path, remote_path, folder)

    def copy_from(self, remote_path: str, local_path: str, folder: bool) -> bool:
        """Data from the head node with rsync (see :mod:`rh_byo.datasync`)."""
        return datasync.copy_from(self, remote_path, local_path, folder)

    def ssh_nodes(self, node) -> list[SSHNode]:
        """The nodes ``node`` names (an index, an address, or "all"), to run commands on."""
        ips = list(self.cluster.ips)
        if node == "all":
            chosen = ips
        elif isinstance(node, int):
            chosen = [ips[node]]
        else:
            chosen = [node]
        return [self._node(ip) for ip in chosen]

    def _node(self, ip: str) -> SSHNode:
        """The node at ``ip``, made once: the OpenSSH client, or paramiko for a password, a key
        passphrase or the paramiko connection type."""
        node = self._node_cache.get(ip)
        if node is None:
            creds = self.cluster.login_creds()
            if self.cluster.server_connection_type == "paramiko" or any(
                    creds.get(k) for k in SECRET_KEYS):
                # fabric and paramiko (about 80 ms to import) load only for clusters that
                # log in with them.
                from rh_byo.paramiko_node import ParamikoNode

                node = ParamikoNode(ip, creds)
            else:
                node = SSHNode(ip, creds)
            self._node_cache[ip] = node
        return node

