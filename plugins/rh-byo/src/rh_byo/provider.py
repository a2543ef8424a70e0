"""The ``byo`` compute provider: bring-up over SSH, the server on the head node, code sync."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rh_byo import wheelhouse
from rh_byo.cluster import SECRET_KEYS, BYOCluster
from rh_byo.ray_nodes import RayNodes
from rh_byo.ssh import NO_SPACE, SSHError, SSHNode, disk_full_error
from rh_core.errors import ConfigError, ConnectionFailedError, PackageInstallError
from rh_core.paths import rh_home
from rh_core.plugin.interfaces import ComputeProvider, ConnectionInfo, ConnectionType, Endpoint
from rh_core.progress import Steps
from rh_core.transport import tls, tokens

NODE_HOME = "~/.rh"
#: Connection types that reach the server through an SSH tunnel (it stays on the node's loopback).
TUNNELS = ("ssh", "paramiko")
SYNC_EXCLUDES = [".git/", "__pycache__/", "*.pyc", ".venv/", "venv/", ".tox/", "node_modules/",
                 ".mypy_cache/", ".pytest_cache/", ".ruff_cache/", "*.egg-info/"]

PROBE = r"""
command -v python3 >/dev/null 2>&1 || { echo "RH_NO_PYTHON"; exit 0; }
echo "RH_HOME_DIR $HOME"
command -v rsync >/dev/null 2>&1 && echo "RH_RSYNC yes"
echo "RH_PYTHON $(python3 -c 'import sys; print(sys.version.split()[0])')"
cat ~/.rh/venv/.rh-wheelhouse 2>/dev/null | sed 's/^/RH_WHEELHOUSE /'
echo
rec=~/.rh/clusters/{name}/server.json
if [ -f "$rec" ]; then
  echo "RH_RECORD $(cat "$rec")"
  pid=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pid'])" "$rec")
  kill -0 "$pid" 2>/dev/null && echo "RH_ALIVE $pid"
fi
rp=~/.rh/clusters/{name}/ray.pid
if [ -f "$rp" ]; then
  sid=$(cat "$rp")
  ps -s "$sid" -o args= 2>/dev/null | grep -q raylet && echo "RH_RAY $sid"
fi
true
"""


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
        return f"{NODE_HOME}/clusters/{self.cluster.short_name}"

    def _token(self) -> str:
        return tokens.cluster_token(f"byo:{self.cluster.short_name}:{self.cluster.ips[0]}")

    def _probe(self, node: SSHNode | None = None) -> dict:
        node = node or self.node
        out = node.run(PROBE.replace("{name}", self.cluster.short_name)).stdout
        if "RH_NO_PYTHON" in out:
            raise ConfigError(
                f"no python3 on {node.target}: looked for `python3` on the login shell's "
                f"PATH. Install Python 3 there (e.g. apt-get install python3).")
        info: dict = {}
        for line in out.splitlines():
            key, _, value = line.partition(" ")
            if key.startswith("RH_"):
                info[key[3:].lower()] = value.strip()
        node.remote_rsync = info.get("rsync") == "yes"  # else uploads go over sftp
        if node is self.node:
            self._home = info.get("home_dir")
        if info.get("record"):
            info["record"] = json.loads(info["record"])
        return info

    def endpoint(self) -> Endpoint | None:
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

    def _each(self, fn, nodes: list) -> list:
        """``fn(node)`` for every node, side by side; the results in order."""
        if len(nodes) == 1:
            return [fn(nodes[0])]
        with ThreadPoolExecutor(len(nodes)) as pool:
            return list(pool.map(fn, nodes))

    def up(self) -> Endpoint:
        steps = Steps(self.cluster.short_name)
        nodes = self._nodes("all")
        more = f" and {len(nodes) - 1} more node(s)" if self.multi else ""
        with steps.step(f"connecting to {self.node.target}{more}"):
            infos = self._each(self._probe, nodes)
        info = infos[0]
        _, key = wheelhouse._source(self.extras)
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
            self._each(ship, nodes)
        with steps.step("creating the virtualenv and installing the server"):
            self._each(lambda node: self._install_venv(key, node), nodes)

    def _install_venv(self, key: str, node: SSHNode | None = None) -> None:
        node = node or self.node
        script = f"""
set -e
cd {NODE_HOME}
[ -f venv/.rh-wheelhouse ] || rm -rf venv  # an install that never finished (a full disk?)
rm -f venv/.rh-wheelhouse venv/.rh-wheelhouse.new
[ -x venv/bin/python ] || python3 -m venv --without-pip venv
pip_whl=$(ls wheelhouse/pip-*.whl | head -n 1)
venv/bin/python "$pip_whl/pip" install --quiet --no-index --find-links wheelhouse \
    --force-reinstall pip 'rh-core[{self.extras}]' 2>&1
echo {shlex.quote(key)} > venv/.rh-wheelhouse.new
mv venv/.rh-wheelhouse.new venv/.rh-wheelhouse
"""
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
        script = f"""
set -e
mkdir -p {d}
rm -f {d}/server.json
read -r RH_SERVER_TOKEN
export RH_SERVER_TOKEN{ray}
setsid nohup {NODE_HOME}/venv/bin/python -m rh_server --host {host} --port {self.port} \
    --name {shlex.quote(name)} --home {NODE_HOME} --record {d}/server.json \
    --log-file {d}/server.log{den}{tls_args} > {d}/server.out 2>&1 < /dev/null &
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

    def _stop(self, pid: int) -> None:
        self.node.run(f"kill {pid} 2>/dev/null; for i in $(seq 100); do kill -0 {pid} 2>/dev/null"
                      f" || exit 0; sleep 0.1; done; kill -9 {pid} 2>/dev/null; true")

    def down(self) -> None:
        try:
            info = self._probe()
        except SSHError:
            return
        if info.get("alive"):
            self._stop(int(info["alive"]))
        self.node.run(f"rm -f {self.cluster_dir}/server.json", check=False)
        if self.multi:
            self._each(self.ray.stop, self._nodes("all"))
        for node in self._nodes("all"):
            node.close()

    def restart_server(self) -> Endpoint:
        """A new server process on the head node; Ray keeps running on every node."""
        info = self._probe()
        if info.get("alive"):
            self._stop(int(info["alive"]))
        return self.up()

    def server_log(self) -> str:
        return self.node.run(f"cat {self.cluster_dir}/server.log 2>/dev/null", check=False).stdout

    def nodes(self) -> list[str]:
        return list(self.cluster.ips)

    def sync_code(self, local_root: str) -> str:
        """rsync the code root to the node (incrementally, .gitignore respected); returns its
        path there."""
        root = Path(local_root)
        if not root.is_dir():
            return local_root
        limit = self.cluster.sync_limit_mb * 1024 * 1024
        size = _tree_size(root)
        if size > limit:
            raise ConfigError(
                f"{root} holds {size / 2**20:.0f} MB to sync, above the cluster's limit of "
                f"{self.cluster.sync_limit_mb} MB: add a .gitignore, or raise sync_limit_mb")
        tag = hashlib.sha256(str(root).encode()).hexdigest()[:8]
        remote = f"code/{root.name}-{tag}"
        if self._home is None:
            self._probe()
        extra = [f"--exclude={e}" for e in SYNC_EXCLUDES]
        if (root / ".gitignore").exists():
            extra.append("--filter=:- .gitignore")

        def sync(node: SSHNode) -> str:
            node.run(f"mkdir -p {NODE_HOME}/{remote}")
            return node.rsync(f"{root}/", f"{NODE_HOME}/{remote}/", extra)

        nodes = self._nodes("all")  # every node: Ray tasks import the code there too
        more = f" to {len(nodes)} nodes" if len(nodes) > 1 else ""
        with Steps(self.cluster.short_name).step(f"syncing {root.name}{more}") as s:
            stats = self._each(sync, nodes)[0]
            sent = [ln for ln in stats.splitlines() if "files transferred" in ln]
            s["note"] = f"{sent[0].split(':')[1].strip()} files sent" if sent else ""
        return f"{self._home}/.rh/{remote}"

    def run_setup(self, commands) -> list[tuple[int, str, str]]:
        cmds = [commands] if isinstance(commands, str) else list(commands)
        done_file = f"{self.cluster_dir}/setup.done"
        self.node.run(f"mkdir -p {self.cluster_dir}; touch {done_file}")
        done = set(self.node.run(f"cat {done_file}").stdout.split())
        out = []
        for c in cmds:
            digest = hashlib.sha256(c.encode()).hexdigest()[:16]
            if digest in done:
                out.append((0, "", "(already run on this cluster)"))
                continue
            p = self.node.run(c, check=False)
            out.append((p.returncode, p.stdout, p.stderr))
            if p.returncode != 0:
                raise ConfigError(f"setup command `{c}` failed on {self.node.target} "
                                  f"(exit code {p.returncode}): {(p.stdout + p.stderr)[-2000:]}")
            self.node.run(f"echo {digest} >> {done_file}")
        return out

    def run_python(self, lines, node=0) -> list[tuple[int, str, str]]:
        code = lines if isinstance(lines, str) else "\n".join(lines)
        out = []
        for n in self._nodes(node):
            p = n.run(f'P={NODE_HOME}/venv/bin/python; [ -x "$P" ] || P=python3; "$P" -',
                      input=code, check=False)
            out.append((p.returncode, p.stdout, p.stderr))
        return out

    def ssh(self, command: str | None = None) -> int:
        if not isinstance(self.node, SSHNode):  # a paramiko node: its own terminal session
            return self.node.shell(command)
        args = ["ssh", "-t", *self.node.options(), self.node.target]
        return subprocess.call(args + ([command] if command else []))

    def notebook(self, port: int = 8888) -> str:
        has = self.node.run(f"{NODE_HOME}/venv/bin/python -c 'import jupyterlab' 2>/dev/null "
                            f"&& echo yes || echo no").stdout.strip()
        if has != "yes":
            raise ConfigError(
                f"JupyterLab is not installed on {self.node.target}: install it into the "
                f"cluster's Python first, e.g. cluster.run(['~/.rh/venv/bin/python -m pip "
                f"install jupyterlab']) (or give an env with reqs=['jupyterlab'])")
        token = tokens.new_grant_token()[4:24]
        self.node.run(
            f"setsid nohup {NODE_HOME}/venv/bin/python -m jupyterlab --no-browser "
            f"--ip 127.0.0.1 --port {port} --IdentityProvider.token={token} "
            f"> {self.cluster_dir}/notebook.log 2>&1 < /dev/null &")
        local = self.node.forward(port)
        return f"http://127.0.0.1:{local}/lab?token={token}"

    def run(self, commands, node=0) -> list[tuple[int, str, str]]:
        cmds = [commands] if isinstance(commands, str) else list(commands)

        def on(n: SSHNode) -> list[tuple[int, str, str]]:
            return [(p.returncode, p.stdout, p.stderr)
                    for p in (n.run(c, check=False) for c in cmds)]

        # Nodes side by side; the results node by node, in the order of ips.
        return [r for per_node in self._each(on, self._nodes(node)) for r in per_node]

    def _nodes(self, node) -> list[SSHNode]:
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
                # paramiko is loaded only for clusters that log in with it.
                from rh_byo.paramiko_node import ParamikoNode

                node = ParamikoNode(ip, creds)
            else:
                node = SSHNode(ip, creds)
            self._node_cache[ip] = node
        return node


def _tree_size(root: Path) -> int:
    total = 0
    skip = {".git", "__pycache__", ".venv", "venv", ".tox", "node_modules"}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for f in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


class SSHConnection(ConnectionType):
    """An SSH tunnel to the server's port on the node (the server stays on its loopback)."""

    name = "ssh"

    def open(self) -> ConnectionInfo:
        provider = self.cluster.provider
        if not isinstance(provider, BYOProvider):
            raise ConfigError(f"the {self.name} connection type needs a cluster reached over "
                              f"SSH (byo)")
        local = provider.node.forward(self.endpoint.port)
        return ConnectionInfo(f"http://127.0.0.1:{local}", verify=False)


class ParamikoConnection(SSHConnection):
    """The same tunnel, carried by paramiko instead of the OpenSSH client: for password
    logins (``ssh_password``) and machines without an ssh client."""

    name = "paramiko"
