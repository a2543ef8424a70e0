"""A node reached with paramiko, through fabric: password logins and passphrase-protected keys,
without the OpenSSH client.

One SSH connection per node (a ``fabric.Connection``; its paramiko Transport carries every
command, sftp upload and port forward) is opened again when it dropped. Host keys follow the
OpenSSH nodes' policy, in the same file: the first key a node shows is recorded in
``$RH_HOME/ssh/known_hosts``, a changed key is refused. (fabric's own default is paramiko's
AutoAddPolicy, which accepts any key; it is replaced before every connect.) The password and
passphrase stay in memory; no message ever holds them.

fabric does the connecting and logging in (``Connection.open``), commands (``Connection.run``),
file uploads (``Connection.put`` and the connection's sftp session, ``Connection.sftp``),
terminal sessions (``run(pty=True)``, ``Connection.shell``) and the piping of each forwarded
connection (``fabric.tunnels.Tunnel``). Two small subclasses adjust it:

- ``_Remote``, the runner of commands, hands the standard input rh gives (the owner token, a
  Python script) over in one piece. invoke reads a stream that is not a terminal one byte per
  10 ms poll: 500 bytes of input took 5 s. A command that ends before reading all of its input
  is not an error (as with a pipe whose reader went away).
- ``_Connection`` opens command sessions with a 30 s timeout instead of paramiko's default of
  an hour, so a connection that died without a word is noticed and opened again.

The local end of the port forward is not fabric's ``Connection.forward_local``, which cannot
serve rh's long-lived tunnel that outlives dropped connections: why, in
:mod:`rh_byo.paramiko_tunnel`.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import fabric
import paramiko
from fabric.runners import Remote
from invoke.exceptions import CommandTimedOut, ThreadException, UnexpectedExit
from paramiko.config import SSHConfig

from rh_byo import treesync
from rh_byo.errors import SSHError, checked, passphrase_needed, upload_failed
from rh_byo.paramiko_tunnel import Forward
from rh_byo.ssh import key_has_passphrase, remote_path
from rh_core.errors import ConfigError
from rh_core.paths import rh_home

#: What only the OpenSSH client can do.
OPENSSH_ONLY = ("ssh_proxy_jump", "ssh_proxy_command", "ssh_host_alias")


class _RecordFirstKey(paramiko.MissingHostKeyPolicy):
    """Accept a host seen for the first time and append its key to rh's known_hosts (as
    OpenSSH's StrictHostKeyChecking=accept-new does); the file is never rewritten."""

    def __init__(self, path: Path):
        self.path = path

    def missing_host_key(self, client, hostname, key):
        with open(self.path, "a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")


class _Remote(Remote):
    """fabric's command runner; the standard input given as text goes over in one piece
    (invoke would send it a byte per 10 ms), and a command may end without reading it all."""

    def read_our_stdin(self, input_):
        if isinstance(input_, io.StringIO):
            return input_.read()
        return super().read_our_stdin(input_)

    def _write_proc_stdin(self, data):
        try:
            super()._write_proc_stdin(data)
        except (OSError, EOFError):  # the command ended without reading it all
            pass

    def close_proc_stdin(self):
        try:
            super().close_proc_stdin()
        except (OSError, EOFError):
            pass


class _Connection(fabric.Connection):
    """A fabric Connection whose command sessions give up after 30 s instead of an hour (then
    the node's connection is taken for dropped and opened again)."""

    def create_session(self):
        return self.transport.open_session(timeout=30)


def _config() -> fabric.Config:
    """fabric's settings for rh: no ssh_config or fabric config files are read (the node is
    reached with the cluster's ``ssh_creds`` only), and commands run through ``_Remote``."""
    config = fabric.Config(ssh_config=SSHConfig(), lazy=True)
    config.runners.remote = _Remote
    return config


class ParamikoNode:
    """A node reached with paramiko; ``creds`` as users give them, with ``ssh_password`` and
    ``ssh_private_key_passphrase`` read back from the secret backend already."""

    def __init__(self, host: str, creds: dict):
        self.host, self.creds = host, dict(creds or {})
        given = sorted(k for k in OPENSSH_ONLY if self.creds.get(k))
        if given:
            raise ConfigError(
                f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} the OpenSSH "
                f"client: use server_connection_type='ssh' with a key (a key with a passphrase "
                f"through ssh-agent), not a password")
        folder = rh_home() / "ssh"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.known_hosts = folder / "known_hosts"
        self.port = int(self.creds.get("ssh_port") or 22)
        #: Set by the provider's probe; paramiko uploads go over sftp all the same.
        self.remote_rsync: bool | None = None
        self._conn: _Connection | None = None
        self._lock = threading.Lock()
        #: One upload at a time: the connection's one SFTPClient serves one thread.
        self._sftp_lock = threading.Lock()
        self._forwards: dict[int, Forward] = {}

    @property
    def target(self) -> str:
        """``user@host`` as messages name the node."""
        user = self.creds.get("ssh_user")
        return f"{user}@{self.host}" if user else self.host

    @property
    def where(self) -> str:
        """The node and its SSH port, as messages about connecting name it."""
        return f"{self.target} (port {self.port})"

    # ------------------------------------------------------------------ the connection

    def connection(self) -> fabric.Connection:
        """The node's connection, open (again, when it dropped)."""
        with self._lock:
            if self._conn is not None and self._conn.is_connected:
                return self._conn
            if self._conn is not None:
                self._conn.close()
            self._conn = self._open()
            return self._conn

    def transport(self) -> paramiko.Transport:
        """The Transport of the node's connection, open."""
        return self.connection().transport

    def _open(self) -> _Connection:
        password = self.creds.get("ssh_password")
        pkey = self._key()
        default_keys = pkey is None and password is None
        conn = _Connection(
            self.host, user=self.creds.get("ssh_user"), port=self.port, config=_config(),
            connect_timeout=15,
            connect_kwargs={"password": password, "pkey": pkey, "allow_agent": default_keys,
                            "look_for_keys": default_keys, "banner_timeout": 15,
                            "auth_timeout": 30})
        if self.known_hosts.exists():
            conn.client.load_system_host_keys(str(self.known_hosts))  # read only: never rewritten
        conn.client.set_missing_host_key_policy(_RecordFirstKey(self.known_hosts))
        try:
            conn.open()
        except paramiko.BadHostKeyException:
            conn.client.close()
            raise SSHError(
                f"the host key of {self.where} is not the one recorded in {self.known_hosts}: "
                f"refusing to connect (the machine was replaced, or someone is in between). If "
                f"the change is expected, remove its line from that file.") from None
        except paramiko.AuthenticationException:
            conn.client.close()
            what = "ssh_password" if password else "ssh_private_key"
            raise SSHError(f"SSH login to {self.where} was refused: check ssh_user and "
                           f"{what}") from None
        except (OSError, EOFError, paramiko.SSHException) as e:
            conn.client.close()
            raise SSHError(f"cannot reach {self.where} over SSH: {e}") from None
        conn.transport.set_keepalive(15)
        return conn

    def _key(self) -> paramiko.PKey | None:
        path = self.creds.get("ssh_private_key")
        if not path:
            return None
        passphrase = self.creds.get("ssh_private_key_passphrase")
        if not passphrase and key_has_passphrase(path):
            raise passphrase_needed(path)
        try:
            return paramiko.PKey.from_path(Path(path).expanduser(),
                                           passphrase.encode() if passphrase else None)
        except paramiko.PasswordRequiredException:
            raise passphrase_needed(path) from None
        except (OSError, TypeError, ValueError, paramiko.SSHException) as e:
            if passphrase and key_has_passphrase(path):
                raise SSHError(f"the key {path} could not be decrypted with the given "
                               f"ssh_private_key_passphrase: check it") from None
            raise SSHError(f"cannot read the key {path}: {e}") from None

    def on_connection(self, use):
        """``use(connection)``; when that fails on a connection that looked alive (it dropped
        and nothing noticed yet), that connection is closed and ``use`` tried once more on a
        new one. ``use`` must fail before it changed anything on the node."""
        conn = self.connection()
        try:
            return use(conn)
        except paramiko.ChannelException:  # the node refused this channel: not a drop
            raise
        except (paramiko.SSHException, EOFError, OSError):
            with self._lock:  # unless another thread has opened a new one already
                if self._conn is conn:
                    conn.close()
                    self._conn = None
            return use(self.connection())

    # ------------------------------------------------------------------ what the provider uses

    def run(self, command: str, input: str | None = None, timeout: float | None = 600,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run a shell command on the node (its login shell, as ssh does)."""
        try:
            # A failure to open the session comes before the command starts: safe to retry.
            result = self.on_connection(lambda c: c.run(
                command, hide=True, warn=True, in_stream=io.StringIO(input or ""),
                timeout=timeout, encoding="utf-8"))
        except CommandTimedOut:
            raise subprocess.TimeoutExpired(command, timeout) from None
        except ThreadException:  # reading the command's output failed
            result = None
        if result is None or result.exited == -1:  # no exit status: the connection went away
            raise SSHError(f"the connection to {self.where} dropped while running "
                           f"`{command.strip()[:100]}`")
        proc = subprocess.CompletedProcess(command, result.exited, result.stdout, result.stderr)
        return checked(self, command, proc, check)

    def rsync(self, source: str, dest: str, extra: list[str] | None = None) -> str:
        """Copy ``source`` (a local folder ending in / or a file) to ``dest`` on the node over
        sftp, incrementally, with rsync's excludes (see :mod:`rh_byo.treesync`)."""
        if Path(source).is_file():
            self._sftp(lambda conn, sftp: conn.put(source, remote_path(dest), preserve_mode=True),
                       dest, Path(source).stat().st_size)
            return treesync.stats(treesync.Plan(put=[source]))

        def apply(plan: treesync.Plan, src: Path, root: str) -> None:
            def steps(conn, sftp):
                for r in plan.delete:
                    _quietly(sftp.remove, f"{root}/{r}")
                for r in plan.rmdir:
                    _quietly(sftp.rmdir, f"{root}/{r}")
                for r in plan.mkdir:
                    _quietly(sftp.mkdir, f"{root}/{r}")
                for r in plan.put:  # sftp.put itself: Connection.put would stat every target
                    st = os.stat(src / r)
                    sftp.put(str(src / r), f"{root}/{r}", confirm=False)
                    sftp.utime(f"{root}/{r}", (st.st_atime, st.st_mtime))
                    sftp.chmod(f"{root}/{r}", stat.S_IMODE(st.st_mode))
                for r, target in plan.link:
                    sftp.symlink(target, f"{root}/{r}")

            self._sftp(steps, dest, plan.put_bytes)

        return treesync.upload(self, source, dest, extra, apply)

    def _sftp(self, steps, dest: str, put_bytes: int) -> None:
        """``steps(connection, sftp)`` with the connection's sftp session; a failing step
        becomes the upload's error (a full disk, or what sftp said)."""
        with self._sftp_lock:
            conn = self.on_connection(_with_sftp)
            try:
                steps(conn, conn.sftp())
            except OSError as e:
                raise upload_failed(self, dest, str(e), put_bytes) from None

    def forward(self, remote_port: int, local_port: int | None = None) -> int:
        """Forward a local port to ``127.0.0.1:remote_port`` on the node; returns the local
        port. Connections are carried by the node's connection (reopened when it dropped)."""
        fw = self._forwards.get(remote_port)
        if fw is not None and fw.alive and local_port in (None, fw.port):
            return fw.port
        self.connection()  # connect now, so a login error shows here
        fw = Forward(self, remote_port, local_port or 0)
        self._forwards[remote_port] = fw
        return fw.port

    def close(self) -> None:
        """Close the connection and every forward."""
        for fw in self._forwards.values():
            fw.close()
        self._forwards.clear()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def master_pid(self) -> int | None:
        """None: there is no ssh process, the connection lives in this one."""
        return None

    def shell(self, command: str | None = None) -> int:
        """An interactive shell on the node (or one command), on this terminal; its exit code."""
        conn = self.connection()
        if _isatty(sys.stdin):
            # fabric gives the session a terminal of this one's size, follows its resizes and
            # sends what is typed.
            if command:
                return conn.run(command, pty=True, warn=True, encoding="utf-8").exited
            try:
                return conn.shell(encoding="utf-8").exited
            except UnexpectedExit as e:  # its docs promise warn=True, fabric 3.2 raises
                return e.result.exited
        # No terminal: the output streamed here, nothing on the command's input.
        return conn.run(command or 'exec "${SHELL:-/bin/sh}" -l', warn=True,
                        in_stream=io.StringIO(""), encoding="utf-8").exited


def _with_sftp(conn: fabric.Connection) -> fabric.Connection:
    """``conn``, with its sftp session open (a session the node ended counts as a drop)."""
    if conn.sftp().get_channel().closed:
        raise paramiko.SSHException("the sftp session was closed")
    return conn


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _quietly(fn, *args) -> None:
    """An sftp step whose failure is not one (a folder that exists, a file already gone);
    a real problem shows on the uploads after it."""
    try:
        fn(*args)
    except OSError:
        pass
