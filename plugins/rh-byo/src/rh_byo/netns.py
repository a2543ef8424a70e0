"""Several SSH hosts on one machine, made with network namespaces (for tests and benchmarks;
needs root).

:func:`start_hosts` makes a bridge, and per host a network namespace joined to it by a veth
pair with its own address, and starts ``sshd`` inside it. Each host also gets its own home for
the test user (a bind mount over the user's home) and its own ``/tmp`` (a tmpfs), so hosts
share nothing but the machine's files outside those. :meth:`Hosts.stop` stops exactly what it
started: the processes left in its namespaces (sshd and what was started through it), the
namespaces, the bridge and the folder.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import attrs

from rh_byo import testing


def _sh(*args: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()}")


@attrs.define
class Hosts:
    ips: list[str]
    user: str
    key: str
    dir: Path
    namespaces: list[str]
    bridge: str
    homes: list[Path]
    sshd_pids: list[int] = attrs.field(factory=list)

    @property
    def creds(self) -> dict:
        return {"ssh_user": self.user, "ssh_private_key": self.key}

    def pids(self, i: int) -> list[int]:
        """The processes running in host ``i``'s namespace."""
        out = subprocess.run(["ip", "netns", "pids", self.namespaces[i]], capture_output=True,
                             text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        for i, ns in enumerate(self.namespaces):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                pids = self.pids(i)
                for pid in pids:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + 5
                while pids and self.pids(i) and time.monotonic() < deadline:
                    time.sleep(0.1)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def missing() -> str | None:
    """What is missing to make hosts with network namespaces here (see
    :func:`rh_byo.testing.lacking`), or None."""
    lacking = testing.lacking(*testing.SSHD_TOOLS, "ip", "hostname")
    if lacking:
        return lacking
    probe = f"rhprobe{os.getpid() % 100000}"
    proc = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if proc.returncode != 0:
        return (f"network namespaces, which this machine refuses (ip netns add: "
                f"{proc.stderr.strip()}): run the tests where root may make them")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def start_hosts(n: int = 3, user: str = "rhray") -> Hosts:
    """``n`` hosts reachable from this machine at ``10.231.X.1..n``, each running sshd on port 22
    that lets ``user`` in with the key ``Hosts.key``."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", user], check=True)
    subprocess.run(["usermod", "-p", "*", user], check=True)
    pw = pwd.getpwnam(user)
    tag = os.getpid() % 100000
    subnet = f"10.231.{tag % 250}"
    # Not under /tmp: each host mounts its own /tmp, and sshd must still see its config.
    d = Path(tempfile.mkdtemp(prefix="rh-hosts-", dir="/var/tmp"))
    d.chmod(0o755)
    hosts = Hosts([], user, str(d / "id_ed25519"), d, [], f"rhbr{tag}", [])
    try:
        auth = testing.make_keys(d)
        _sh("ip", "link", "add", hosts.bridge, "type", "bridge")
        _sh("ip", "addr", "add", f"{subnet}.254/24", "dev", hosts.bridge)
        _sh("ip", "link", "set", hosts.bridge, "up")
        Path("/run/sshd").mkdir(exist_ok=True)
        for i in range(n):
            ns, ip = f"rh{tag}n{i}", f"{subnet}.{i + 1}"
            outside, inside = f"rhv{tag}o{i}", f"rhv{tag}i{i}"
            _sh("ip", "netns", "add", ns)
            hosts.namespaces.append(ns)
            _sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            _sh("ip", "link", "set", inside, "netns", ns)
            _sh("ip", "link", "set", outside, "master", hosts.bridge, "up")
            for cmd in (["ip", "addr", "add", f"{ip}/24", "dev", inside],
                        ["ip", "link", "set", inside, "up"], ["ip", "link", "set", "lo", "up"]):
                _sh("ip", "netns", "exec", ns, *cmd)
            home = d / f"home{i}"
            home.mkdir()
            os.chown(home, pw.pw_uid, pw.pw_gid)
            hosts.homes.append(home)
            config = d / f"sshd_config{i}"
            testing.write_config(config, 22, ip, d, auth, user)
            script = (f"mount --bind {home} {pw.pw_dir} && mount -t tmpfs -o size=4g tmpfs /tmp "
                      f"&& exec /usr/sbin/sshd -D -f {config} -E {d}/sshd{i}.log")
            proc = subprocess.Popen(["ip", "netns", "exec", ns, "unshare", "--mount",
                                     "--propagation", "private", "sh", "-c", script])
            hosts.sshd_pids.append(proc.pid)
            hosts.ips.append(ip)
        for i, ip in enumerate(hosts.ips):
            _wait_port(hosts, i, ip)
    except BaseException:
        hosts.stop()
        raise
    return hosts


def _wait_port(hosts: Hosts, i: int, ip: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ip, 22), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    log = hosts.dir / f"sshd{i}.log"
    raise RuntimeError(f"sshd on {ip} did not start: {log.read_text()[-2000:] if log.exists() else ''}")
