"""Ray on the nodes of a byo cluster of several nodes: a head on the first node, every other
node joined to it, each run detached in a session of its own (recorded in ``ray.pid`` in the
cluster's folder on the node) so that it can be stopped exactly, by session id."""

from __future__ import annotations

import shlex

from rh_byo.ssh import SSHNode
from rh_core.errors import ConnectionFailedError

NODE_HOME = "~/.rh"


class RayNodes:
    """Starts, waits for and stops Ray on the nodes of ``provider``'s cluster."""

    def __init__(self, provider):
        self.p = provider

    @property
    def ips(self) -> list[str]:
        """The addresses the nodes reach each other at (``internal_ips``, else ``ips``)."""
        return list(self.p.cluster.internal_ips or self.p.cluster.ips)

    @property
    def address(self) -> str:
        return f"{self.ips[0]}:{self.p.cluster.ray_port}"

    def start(self, nodes: list[SSHNode]) -> None:
        """A Ray head on the head node and every other node joined to it; waits until all
        have joined. Ray runs detached, in a session of its own recorded in ray.pid."""
        self.p.each(self.stop, nodes)
        ips, port = self.ips, self.p.cluster.ray_port
        self._start_one(nodes[0], ips[0], f"--head --port={port} --include-dashboard=false")
        self._wait_on_head(f"""
import socket, sys, time
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        socket.create_connection(({ips[0]!r}, {port}), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
""", "python3 -", "the Ray head did not start")
        self.p.each(lambda i: self._start_one(nodes[i], ips[i], f"--address={self.address}"),
                     list(range(1, len(nodes))))
        self._wait_on_head(None, f"{NODE_HOME}/venv/bin/python -m rh_server.ray_map wait "
                                 f"{self.address} {len(nodes)} 120",
                           f"not every node joined Ray at {self.address}")

    def _start_one(self, node: SSHNode, ip: str, args: str) -> None:
        d = self.p.cluster_dir
        extra = " ".join(shlex.quote(a) for a in self.p.cluster.ray_args)
        node.run(f"""
set -e
mkdir -p {d}
setsid nohup {NODE_HOME}/venv/bin/ray start --block {args} --node-ip-address={ip} \
    --disable-usage-stats --temp-dir=/tmp/rh-ray-$(id -u) {extra} \
    > {d}/ray.log 2>&1 < /dev/null &
echo $! > {d}/ray.pid
""".replace(NODE_HOME, "$HOME/.rh"))

    def _wait_on_head(self, code: str | None, command: str, failure: str) -> None:
        """Run a waiting command on the head node with its output in a file (a process it
        leaves behind must not hold the SSH session open); raise ``failure`` with the Ray logs
        when it fails."""
        out = f"{self.p.cluster_dir}/ray-wait.out"
        stdin = "/dev/stdin" if code else "/dev/null"
        proc = self.p.node.run(f"{command} > {out} 2>&1 < {stdin}; c=$?; cat {out}; exit $c",
                               input=code, check=False, timeout=180)
        if proc.returncode != 0:
            logs = "\n".join(
                f"--- {n.target}: ray.log\n"
                + n.run(f"tail -n 20 {self.p.cluster_dir}/ray.log", check=False).stdout
                for n in self.p.ssh_nodes("all"))
            raise ConnectionFailedError(f"{failure}:\n{proc.stdout[-1000:]}\n{logs}")

    def stop(self, node: SSHNode) -> None:
        """Stop every process of the Ray session rh started on ``node`` (by its session id:
        Ray's own processes are not all children of ``ray start``)."""
        d = self.p.cluster_dir
        node.run(f"""
f={d}/ray.pid
[ -f "$f" ] || exit 0
sid=$(cat "$f")
if ps -s "$sid" -o args= 2>/dev/null | grep -q ray; then
  kill $(ps -s "$sid" -o pid=) 2>/dev/null
  for i in $(seq 30); do [ -z "$(ps -s "$sid" -o pid=)" ] && break; sleep 0.1; done
  left=$(ps -s "$sid" -o pid=)
  [ -n "$left" ] && kill -9 $left 2>/dev/null
fi
rm -f "$f"
true
""", check=False)

