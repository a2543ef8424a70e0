"""The instances of a stand-in training job of several instances (``standin.py``): each in a
network namespace of its own, joined to the job's bridge by a veth pair with its own address
(so every instance's Ray binds its own address and ports), and in a mount namespace of its own
where the instance's home folder is bind-mounted over one shared path (on SageMaker every
instance has the same paths, with its own files). Needs root.

:meth:`Network.stop` stops exactly what it made: the processes left in its namespaces, the
namespaces, the bridge and Ray's temp folders.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_tags = itertools.count()


def sh(*args: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()}")


def pids(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class Network:
    """A bridge and one namespace per instance: ``hosts`` (``algo-K``), ``namespaces`` and
    ``addresses`` in the same order."""

    def __init__(self, count: int):
        tag = (os.getpid() * 7 + next(_tags)) % 100000
        self.tag = tag
        self.subnet = f"10.234.{tag % 250}"
        self.bridge = f"rhsm{tag}br"
        self.hosts = [f"algo-{k}" for k in range(1, count + 1)]
        self.namespaces: list[str] = []
        self.addresses: list[str] = []
        self.ray_tmps = [f"/tmp/rhsm{tag}r{k}" for k in range(1, count + 1)]
        try:
            sh("ip", "link", "add", self.bridge, "type", "bridge")
            sh("ip", "addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
            sh("ip", "link", "set", self.bridge, "up")
            for k in range(1, count + 1):
                ns, ip = f"rhsm{tag}n{k}", f"{self.subnet}.{k}"
                outside, inside = f"rhsm{tag}o{k}", f"rhsm{tag}i{k}"
                sh("ip", "netns", "add", ns)
                self.namespaces.append(ns)
                sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
                sh("ip", "link", "set", inside, "netns", ns)
                sh("ip", "link", "set", outside, "master", self.bridge, "up")
                # A default route, as an instance has: Ray finds its own address by it.
                for cmd in (["ip", "addr", "add", f"{ip}/24", "dev", inside],
                            ["ip", "link", "set", inside, "up"], ["ip", "link", "set", "lo", "up"],
                            ["ip", "route", "add", "default", "via", f"{self.subnet}.254"]):
                    sh("ip", "netns", "exec", ns, *cmd)
                self.addresses.append(ip)
        except BaseException:
            self.stop()
            raise

    def spawn(self, k: int, argv: list[str], env: dict, home: str, mount_at: str, **kw):
        """Run ``argv`` as instance ``k`` (0-based): in its namespace, with ``home`` mounted
        at ``mount_at``. The process's PID is ``argv[0]``'s (each step execs the next)."""
        script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        return subprocess.Popen(["ip", "netns", "exec", self.namespaces[k], "unshare", "--mount",
                                 "--propagation", "private", "sh", "-c", script, "sh", home,
                                 mount_at, *argv], env=env, start_new_session=True, **kw)

    def left(self) -> dict[str, list[int]]:
        """The processes still running in each instance's namespace."""
        return {h: pids(ns) for h, ns in zip(self.hosts, self.namespaces, strict=True)}

    def stop(self) -> None:
        for ns in self.namespaces:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid in pids(ns):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + 5
                while pids(ns) and time.monotonic() < deadline:
                    time.sleep(0.1)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces = []
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        for d in self.ray_tmps:
            shutil.rmtree(d, ignore_errors=True)


def connect(ns: str, port: int) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` inside the namespace ``ns`` (this thread enters
    it for the connect, then returns to its own)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                os._exit(70)  # a thread left in another namespace would misroute everything
    finally:
        os.close(own)
        os.close(target)
