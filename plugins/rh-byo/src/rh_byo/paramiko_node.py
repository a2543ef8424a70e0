"""A node reached with paramiko: password logins and passphrase-protected keys, without the
OpenSSH client.

One paramiko Transport per node carries every command, sftp upload and port forward; it is
reopened when it dropped. Host keys follow the OpenSSH nodes' policy, in the same file: the
first key a node shows is recorded in ``$RH_HOME/ssh/known_hosts``, a changed key is refused.
The password and passphrase stay in memory; no message ever holds them.
"""

from __future__ import annotations

import os
import select
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import paramiko

from rh_byo import treesync
from rh_byo.errors import SSHError, checked, passphrase_needed, upload_failed
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
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()
        self._forwards: dict[int, _Forward] = {}

    @property
    def target(self) -> str:
        user = self.creds.get("ssh_user")
        return f"{user}@{self.host}" if user else self.host

    @property
    def where(self) -> str:
        return f"{self.target} (port {self.port})"

    # ------------------------------------------------------------------ the connection

    def transport(self) -> paramiko.Transport:
        """The node's Transport, connected (again, when it dropped)."""
        with self._lock:
            t = self._client.get_transport() if self._client else None
            if t is not None and t.is_active():
                return t
            if self._client is not None:
                self._client.close()
            self._client = self._connect()
            t = self._client.get_transport()
            t.set_keepalive(15)
            return t

    def _connect(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if self.known_hosts.exists():
            client.load_system_host_keys(str(self.known_hosts))  # read only: never rewritten
        client.set_missing_host_key_policy(_RecordFirstKey(self.known_hosts))
        password = self.creds.get("ssh_password")
        pkey = self._key()
        default_keys = pkey is None and password is None
        try:
            client.connect(self.host, port=self.port, username=self.creds.get("ssh_user"),
                           password=password, pkey=pkey, allow_agent=default_keys,
                           look_for_keys=default_keys, timeout=15, banner_timeout=15,
                           auth_timeout=30)
        except paramiko.BadHostKeyException:
            client.close()
            raise SSHError(
                f"the host key of {self.where} is not the one recorded in {self.known_hosts}: "
                f"refusing to connect (the machine was replaced, or someone is in between). If "
                f"the change is expected, remove its line from that file.") from None
        except paramiko.AuthenticationException:
            client.close()
            what = "ssh_password" if password else "ssh_private_key"
            raise SSHError(f"SSH login to {self.where} was refused: check ssh_user and "
                           f"{what}") from None
        except (OSError, EOFError, paramiko.SSHException) as e:
            client.close()
            raise SSHError(f"cannot reach {self.where} over SSH: {e}") from None
        return client

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

    def _channel(self, open_fn):
        """``open_fn(transport)``; when that fails on a transport that looked alive (it dropped
        and nothing noticed yet), once more on a new one."""
        t = self.transport()
        try:
            return open_fn(t)
        except paramiko.ChannelException:  # the node refused this channel: not a drop
            raise
        except (paramiko.SSHException, EOFError, OSError):
            with self._lock:  # unless another thread has opened a new one already
                if self._client is not None and self._client.get_transport() is t:
                    self._client.close()
                    self._client = None
            return open_fn(self.transport())

    # ------------------------------------------------------------------ what the provider uses

    def run(self, command: str, input: str | None = None, timeout: float | None = 600,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run a shell command on the node (its login shell, as ssh does)."""
        chan = self._channel(lambda t: t.open_session(timeout=30))
        chan.settimeout(timeout)
        out, err = bytearray(), bytearray()
        try:
            chan.exec_command(command)

            def feed():
                try:
                    if input is not None:
                        chan.sendall(input.encode())
                    chan.shutdown_write()
                except (OSError, EOFError):
                    pass

            def drain_stderr():
                try:
                    while data := chan.recv_stderr(65536):
                        err.extend(data)
                except (OSError, EOFError):
                    pass

            helpers = [threading.Thread(target=f, daemon=True) for f in (feed, drain_stderr)]
            for h in helpers:
                h.start()
            while data := chan.recv(65536):
                out.extend(data)
            for h in helpers:
                h.join(timeout)
            code = chan.recv_exit_status()
        except socket.timeout:
            raise subprocess.TimeoutExpired(command, timeout) from None
        finally:
            chan.close()
        if code == -1:  # no exit status: the connection went away under the command
            raise SSHError(f"the connection to {self.where} dropped while running "
                           f"`{command.strip()[:100]}`")
        proc = subprocess.CompletedProcess(command, code, out.decode(errors="replace"),
                                           err.decode(errors="replace"))
        return checked(self, command, proc, check)

    def rsync(self, source: str, dest: str, extra: list[str] | None = None) -> str:
        """Copy ``source`` (a local folder ending in / or a file) to ``dest`` on the node over
        sftp, incrementally, with rsync's excludes (see :mod:`rh_byo.treesync`)."""
        if Path(source).is_file():
            size = Path(source).stat().st_size

            def one(sftp):
                sftp.put(source, remote_path(dest), confirm=False)
                sftp.chmod(remote_path(dest), stat.S_IMODE(os.stat(source).st_mode))

            self._sftp(one, dest, size)
            return treesync.stats(treesync.Plan(put=[source]))

        def apply(plan: treesync.Plan, src: Path, root: str) -> None:
            def steps(sftp):
                for r in plan.delete:
                    _quietly(sftp.remove, f"{root}/{r}")
                for r in plan.rmdir:
                    _quietly(sftp.rmdir, f"{root}/{r}")
                for r in plan.mkdir:
                    _quietly(sftp.mkdir, f"{root}/{r}")
                for r in plan.put:
                    st = os.stat(src / r)
                    sftp.put(str(src / r), f"{root}/{r}", confirm=False)
                    sftp.utime(f"{root}/{r}", (st.st_atime, st.st_mtime))
                    sftp.chmod(f"{root}/{r}", stat.S_IMODE(st.st_mode))
                for r, target in plan.link:
                    sftp.symlink(target, f"{root}/{r}")

            self._sftp(steps, dest, plan.put_bytes)

        return treesync.upload(self, source, dest, extra, apply)

    def _sftp(self, steps, dest: str, put_bytes: int) -> None:
        sftp = self._channel(paramiko.SFTPClient.from_transport)
        try:
            steps(sftp)
        except OSError as e:
            raise upload_failed(self, dest, str(e), put_bytes) from None
        finally:
            sftp.close()

    def forward(self, remote_port: int, local_port: int | None = None) -> int:
        """Forward a local port to ``127.0.0.1:remote_port`` on the node; returns the local
        port. Connections are carried by the node's Transport (reopened when it dropped)."""
        fw = self._forwards.get(remote_port)
        if fw is not None and fw.alive and local_port in (None, fw.port):
            return fw.port
        self.transport()  # connect now, so a login error shows here
        fw = _Forward(self, remote_port, local_port or 0)
        self._forwards[remote_port] = fw
        return fw.port

    def close(self) -> None:
        """Close the Transport and every forward."""
        for fw in self._forwards.values():
            fw.close()
        self._forwards.clear()
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def master_pid(self) -> int | None:
        return None  # no ssh process: the connection lives in this one

    def shell(self, command: str | None = None) -> int:
        """An interactive shell on the node (or one command), on this terminal; its exit code."""
        chan = self._channel(lambda t: t.open_session(timeout=30))
        tty = _isatty(sys.stdin)
        if tty:
            size = os.get_terminal_size(sys.stdin.fileno())
            chan.get_pty(term=os.environ.get("TERM", "xterm"), width=size.columns,
                         height=size.lines)
        if command:
            chan.exec_command(command)
        else:
            chan.invoke_shell()
        if tty:
            _interactive(chan)
        else:
            chan.shutdown_write()

            def drain_stderr():
                while data := chan.recv_stderr(65536):
                    sys.stderr.write(data.decode(errors="replace"))

            errs = threading.Thread(target=drain_stderr, daemon=True)
            errs.start()
            while data := chan.recv(65536):
                sys.stdout.write(data.decode(errors="replace"))
            errs.join()
            sys.stdout.flush()
        code = chan.recv_exit_status()
        chan.close()
        return code


class _Forward:
    """A listening socket on 127.0.0.1 whose connections go to a port on the node, each over
    a ``direct-tcpip`` channel of the node's Transport."""

    def __init__(self, node: ParamikoNode, remote_port: int, local_port: int):
        self.node, self.remote_port = node, remote_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", local_port))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.alive = True
        threading.Thread(target=self._accept, daemon=True, name=f"rh-forward-{self.port}").start()

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                self.alive = False
                return
            threading.Thread(target=self._serve, args=(conn, peer), daemon=True).start()

    def _serve(self, conn: socket.socket, peer) -> None:
        try:
            chan = self.node._channel(lambda t: t.open_channel(
                "direct-tcpip", ("127.0.0.1", self.remote_port), peer, timeout=15))
        except Exception:  # the node or its port is gone: the client sees a closed connection
            conn.close()
            return
        _pipe(conn, chan)

    def close(self) -> None:
        self.alive = False
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone does not)
        except OSError:
            pass
        self.sock.close()


def _pipe(conn: socket.socket, chan: paramiko.Channel) -> None:
    try:
        while True:
            r, _, _ = select.select([conn, chan], [], [])
            if conn in r:
                data = conn.recv(65536)
                if not data:
                    break
                chan.sendall(data)
            if chan in r:
                data = chan.recv(65536)
                if not data:
                    break
                conn.sendall(data)
    except (OSError, EOFError):
        pass
    finally:
        chan.close()
        conn.close()


def _interactive(chan: paramiko.Channel) -> None:
    """Raw terminal in, channel out, until the remote side ends."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        while True:
            r, _, _ = select.select([chan, fd], [], [])
            if chan in r:
                data = chan.recv(65536)
                if not data:
                    break
                os.write(sys.stdout.fileno(), data)
            if fd in r:
                data = os.read(fd, 1024)
                if not data:
                    break
                chan.sendall(data)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


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
