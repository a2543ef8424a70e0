"""A pod's sandbox on this machine, as a container runtime would make it (needs root):

- its own network namespace (``ip netns``), with loopback up and a veth on the stand-in's
  bridge giving it the pod IP, so two pods may both listen on 127.0.0.1:32300;
- its container's processes in a private mount namespace where a tmpfs covers ``/mnt`` and
  another ``/run`` (so volumes get mount points without touching the host) and each volume's
  folder is bind-mounted at its ``mountPath`` (under ``/mnt``, or the service account's folder
  under ``/var/run``, which is ``/run`` here); ``HOME`` is ``/mnt/home`` there. Anything else of the
  filesystem is the machine's (no image layers);
- "images" are folders of programs first on ``PATH``: ``python:*`` images hold ``python3``
  (this machine's base interpreter and its packages, not the test environment's) and have the
  machine's ``/usr/bin`` after it; ``rh-test/no-python`` holds nothing and has nothing after.

Every process of a pod lives in its network namespace, so ``kill_all`` stops exactly them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)
#: The interpreter a ``python:*`` image runs: the base Python of the test environment.
BASE_PYTHON = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
IMAGES = {"python:3.11-slim": True, "python:3.11": True, "rh-test/no-python:1": False}
#: The environment of the sandbox's own tools (ip, unshare, mount), not the container's.
TOOLS_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def sh(*args: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()}")


class Network:
    """The stand-in's bridge and the pods' namespaces on it."""

    def __init__(self, tag: int):
        self.tag = tag
        self.subnet = f"10.232.{tag % 250}"
        self.bridge = f"rhk{tag}br"
        self.next_ip = 1
        #: The host's address on the bridge (the pods reach the stand-in's API there).
        self.host_ip = f"{self.subnet}.254"
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")

    def add(self, key: str) -> tuple[str, str]:
        """A namespace for a pod: ``(name, pod IP)``."""
        n = self.next_ip
        self.next_ip += 1
        ns, ip = f"rhk{self.tag}p{n}", f"{self.subnet}.{n}"
        outside, inside = f"rhk{self.tag}o{n}", f"rhk{self.tag}i{n}"
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
        sh("ip", "link", "set", inside, "netns", ns)
        sh("ip", "link", "set", outside, "master", self.bridge, "up")
        for cmd in (["ip", "addr", "add", f"{ip}/24", "dev", inside],
                    ["ip", "link", "set", inside, "up"], ["ip", "link", "set", "lo", "up"]):
            sh("ip", "netns", "exec", ns, *cmd)
        return ns, ip

    def remove(self, ns: str, main: int | None = None, grace: float = 5.0) -> None:
        stop(ns, main, grace)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


def pids(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def stop(ns: str, main: int | None, grace: float) -> None:
    """Stop a container as the kubelet does: SIGTERM to its main process, then after ``grace``
    seconds (or once it is gone) SIGKILL to whatever is left in the pod."""
    if main is not None:
        try:
            os.kill(main, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _alive(main):
            time.sleep(0.05)
    kill_all(ns)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_all(ns: str) -> None:
    """SIGKILL every process in the pod's namespace (what the runtime does last)."""
    for _ in range(50):
        found = pids(ns)
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def image_path(state: Path, image: str) -> str:
    """The image's PATH: its folder of programs, then the machine's for python images."""
    d = image_bin(state, image)
    return f"{d}:/usr/local/bin:/usr/bin:/bin" if IMAGES.get(image) else str(d)


def image_bin(state: Path, image: str) -> Path:
    """The folder of programs the image puts first on PATH."""
    d = state / "images" / image.replace("/", "_").replace(":", "_")
    if not d.exists():
        d.mkdir(parents=True)
        if IMAGES.get(image):
            (d / "python3").symlink_to(BASE_PYTHON)
            (d / "python").symlink_to(BASE_PYTHON)
    return d


def start(ns: str, command: list[str], env: dict[str, str], mounts: dict[str, Path],
          log: Path) -> subprocess.Popen:
    """The container's main process in the pod's namespaces, its output appended to ``log``."""
    script = ["mount -t tmpfs tmpfs /mnt", "mount -t tmpfs tmpfs /run", "mkdir -p /mnt/home"]
    for target, source in mounts.items():
        script += [f"mkdir -p '{target}'", f"mount --bind '{source}' '{target}'"]
    script.append('exec env -i "$@"')  # the container's environment only, its PATH included
    out = open(log, "ab")
    try:
        return subprocess.Popen(
            ["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private",
             "sh", "-c", " && ".join(script), "sh", *_assign(env), *command],
            env=TOOLS_ENV, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    finally:
        out.close()


def probe(ns: str, command: list[str], env: dict[str, str], timeout: float) -> bool:
    """An exec probe in the pod's network namespace: whether it exits 0 within ``timeout``."""
    try:
        return subprocess.run(["ip", "netns", "exec", ns, "env", "-i", *_assign(env), *command],
                              env=TOOLS_ENV, capture_output=True, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _assign(env: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()]


def connect(ns: str, port: int) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` inside the namespace ``ns`` (this thread enters
    it for the connect, then returns to its own)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns into the pod's network namespace failed")
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                os._exit(70)  # a thread left in a pod's namespace would misroute everything
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    finally:
        os.close(own)
        os.close(target)
