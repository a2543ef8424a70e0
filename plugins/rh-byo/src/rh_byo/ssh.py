"""One persistent SSH connection per node, with the OpenSSH client and a control master.

Every command, file copy (rsync over the same connection) and port forward reuses the master
socket, so only the first contact pays for the handshake. Host keys are checked: the first key
seen is recorded in rh's own known_hosts file; a changed key is refused.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

from rh_byo import treesync
from rh_byo.errors import NO_SPACE, SSHError, checked, disk_full_error, passphrase_needed, upload_failed
from rh_core.paths import rh_home


def key_has_passphrase(path: str) -> bool:
    """Whether the private key file at ``path`` is encrypted (OpenSSH or PEM format)."""
    try:
        text = Path(path).expanduser().read_text()
    except (OSError, UnicodeDecodeError):
        return False
    if "ENCRYPTED" in "\n".join(text.splitlines()[:3]):  # PEM: Proc-Type: 4,ENCRYPTED
        return True
    if "BEGIN OPENSSH PRIVATE KEY" in text:
        try:
            body = base64.b64decode("".join(ln for ln in text.splitlines()
                                            if ln and not ln.startswith("-----")))
        except ValueError:
            return False
        magic = b"openssh-key-v1\0"
        n = int.from_bytes(body[len(magic):len(magic) + 4], "big")
        return body[len(magic) + 4:len(magic) + 4 + n] != b"none"
    return False


def sftp_quote(path: str) -> str:
    """A path as sftp's batch parser reads it: double quotes, with \\ and \" escaped."""
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def remote_path(dest: str) -> str:
    """``dest`` as sftp takes it: relative to the login folder instead of ``~/``."""
    return dest[2:] if dest.startswith("~/") else dest


def jump_command(jump: str, creds: dict, known_hosts: Path, host_keys: str = "accept-new") -> str:
    """The ProxyCommand that reaches a node through the jump host ``jump`` (``user@host[:port]``)
    with the node's key and rh's known_hosts (``StrictHostKeyChecking`` ``host_keys``)."""
    user_host, _, port = jump.rpartition(":") if jump.count(":") == 1 else (jump, "", "")
    parts = ["ssh", "-o", "BatchMode=yes", "-o", f"StrictHostKeyChecking={host_keys}",
             "-o", f"UserKnownHostsFile={known_hosts}", "-o", "LogLevel=ERROR"]
    if creds.get("ssh_private_key"):
        parts += ["-i", str(Path(creds["ssh_private_key"]).expanduser()), "-o", "IdentitiesOnly=yes"]
    if port:
        parts += ["-p", port]
    parts += ["-W", "%h:%p", user_host]
    return " ".join(shlex.quote(p) if p != "%h:%p" else p for p in parts)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SSHNode:
    """A node reached with ``ssh``; ``creds`` as users give them (ssh_user, ssh_private_key,
    ssh_port, ssh_proxy_jump, ssh_proxy_command, ssh_host_alias)."""

    def __init__(self, host: str, creds: dict):
        self.host, self.creds = host, dict(creds or {})
        if shutil.which("ssh") is None:
            raise SSHError("the OpenSSH client (ssh) is not installed on this machine")
        key = hashlib.sha256(f"{host}:{sorted(self.creds.items())}".encode()).hexdigest()[:12]
        folder = rh_home() / "ssh"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Unix socket paths are limited to ~100 bytes: keep the control path short.
        self.control = f"/tmp/rh-ssh-{os.getuid()}-{key}"
        self.known_hosts = folder / "known_hosts"
        #: Whether the node has rsync (None: not known yet; the provider's probe tells).
        self.remote_rsync: bool | None = None

    @property
    def target(self) -> str:
        alias = self.creds.get("ssh_host_alias")
        if alias:
            return alias
        user = self.creds.get("ssh_user")
        return f"{user}@{self.host}" if user else self.host

    def options(self) -> list[str]:
        c = self.creds
        opts = [
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=accept-new",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={self.control}",
            "-o", "ControlPersist=600",
            "-o", "ConnectTimeout=15",
            "-o", "ServerAliveInterval=15",
            "-o", "LogLevel=ERROR",
        ]
        if c.get("ssh_port"):
            opts += ["-p", str(c["ssh_port"])]
        if c.get("ssh_private_key"):
            opts += ["-i", str(Path(c["ssh_private_key"]).expanduser()),
                     "-o", "IdentitiesOnly=yes"]
        if c.get("ssh_proxy_jump"):
            # A ProxyCommand rather than -J: the hop then uses the same key and known_hosts
            # (options given on the command line do not reach a -J hop).
            opts += ["-o", f"ProxyCommand={self._jump_command(c['ssh_proxy_jump'])}"]
        if c.get("ssh_proxy_command"):
            opts += ["-o", f"ProxyCommand={c['ssh_proxy_command']}"]
        return opts

    def _jump_command(self, jump: str) -> str:
        return jump_command(jump, self.creds, self.known_hosts)

    def _explain(self, code: int, stderr: str) -> SSHError:
        text = stderr.strip()
        where = f"{self.target} (port {self.creds.get('ssh_port', 22)})"
        if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text or "Host key verification failed" in text:
            return SSHError(
                f"the host key of {where} is not the one recorded in {self.known_hosts}: "
                f"refusing to connect (the machine was replaced, or someone is in between). If "
                f"the change is expected, remove its line from that file.")
        if "Permission denied" in text:
            key = self.creds.get("ssh_private_key")
            if key and key_has_passphrase(key):
                return passphrase_needed(key)
            return SSHError(f"SSH login to {where} was refused: check ssh_user and "
                            f"ssh_private_key (or ssh-agent). ssh said: {text[-500:]}")
        if any(s in text for s in ("Connection refused", "timed out", "No route to host",
                                   "Could not resolve", "Network is unreachable")):
            return SSHError(f"cannot reach {where} over SSH: {text[-500:]}")
        return SSHError(f"ssh to {where} failed (exit code {code}): {text[-1000:]}")

    def run(self, command: str, input: str | None = None, timeout: float | None = 600,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run a shell command on the node (through the master connection)."""
        proc = subprocess.run(["ssh", *self.options(), self.target, command], input=input,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode == 255:  # ssh's own failure, not the command's
            raise self._explain(proc.returncode, proc.stderr)
        return checked(self, command, proc, check)

    def rsync(self, source: str, dest: str, extra: list[str] | None = None) -> str:
        """Copy ``source`` (a local folder ending in /) to ``dest`` on the node, incrementally."""
        if self.remote_rsync is False or shutil.which("rsync") is None:
            return self.sftp_upload(source, dest, extra)
        ssh = "ssh " + " ".join(shlex.quote(o) for o in self.options())
        cmd = ["rsync", "-az", "--delete", "--stats", "-e", ssh, *(extra or []), source,
               f"{self.target}:{dest}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            if any(s in proc.stderr for s in ("rsync: command not found", "rsync: not found",
                                              "remote command not found")):
                self.remote_rsync = False
                return self.sftp_upload(source, dest, extra)
            if NO_SPACE in proc.stderr:
                raise disk_full_error(self, f"copying to {dest}")
            if proc.returncode == 255 or "connection unexpectedly closed" in proc.stderr:
                raise self._explain(255, proc.stderr)
            raise SSHError(f"rsync to {self.target}:{dest} failed: {proc.stderr.strip()[-1500:]}")
        return proc.stdout

    def sftp_upload(self, source: str, dest: str, extra: list[str] | None = None) -> str:
        """What :meth:`rsync` does, with ``sftp -b`` through the master connection: for nodes
        without rsync. Incremental (see :mod:`rh_byo.treesync`)."""
        if Path(source).is_file():
            self._sftp([f"put -p {sftp_quote(source)} {sftp_quote(remote_path(dest))}"], dest,
                       Path(source).stat().st_size)
            return treesync.stats(treesync.Plan(put=[source]))

        def apply(plan, src: Path, root: str) -> None:
            q = sftp_quote
            lines = [f"-rm {q(f'{root}/{r}')}" for r in plan.delete]
            lines += [f"-rmdir {q(f'{root}/{r}')}" for r in plan.rmdir]
            lines += [f"-mkdir {q(f'{root}/{r}')}" for r in plan.mkdir]
            lines += [f"put -p {q(str(src / r))} {q(f'{root}/{r}')}" for r in plan.put]
            lines += [f"-ln -s {q(t)} {q(f'{root}/{r}')}" for r, t in plan.link]
            self._sftp(lines, dest, plan.put_bytes)

        return treesync.upload(self, source, dest, extra, apply)

    def _sftp(self, lines: list[str], dest: str, put_bytes: int) -> None:
        if shutil.which("sftp") is None:
            raise SSHError("neither rsync nor sftp is installed on this machine: install "
                           "rsync (or the OpenSSH client's sftp)")
        opts = ["-P" if o == "-p" else o for o in self.options()]
        proc = subprocess.run(["sftp", "-b", "-", *opts, self.target],
                              input="\n".join(lines) + "\n", capture_output=True, text=True)
        if proc.returncode != 0:
            if proc.returncode == 255:  # the connection, not a transfer
                raise self._explain(255, proc.stderr)
            raise upload_failed(self, dest, proc.stderr, put_bytes)

    def forward(self, remote_port: int, local_port: int | None = None) -> int:
        """Forward a local port to ``127.0.0.1:remote_port`` on the node; returns the local port."""
        local_port = local_port or free_port()
        self.run("true")  # make sure the master runs
        proc = subprocess.run(["ssh", *self.options(), "-O", "forward",
                               "-L", f"127.0.0.1:{local_port}:127.0.0.1:{remote_port}",
                               self.target], capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise self._explain(proc.returncode, proc.stderr)
        return local_port

    def close(self) -> None:
        """Stop the master connection (and with it every forward)."""
        subprocess.run(["ssh", *self.options(), "-O", "exit", self.target],
                       capture_output=True, timeout=30)

    def master_pid(self) -> int | None:
        """The PID of the master connection's ``ssh`` process (None when none runs)."""
        proc = subprocess.run(["ssh", *self.options(), "-O", "check", self.target],
                              capture_output=True, text=True, timeout=30)
        text = proc.stderr + proc.stdout
        if "pid=" in text:
            return int(text.split("pid=")[1].split(")")[0])
        return None

