"""A private OpenSSH server on 127.0.0.1, for rh-byo's tests and benchmarks (needs root).

:func:`start_sshd` makes a test user (a normal account with a locked password: key login only),
a host key and a client key in a new temp folder, and starts ``sshd`` with its own config;
:meth:`Sshd.stop` stops exactly that process, by PID, and removes the folder. Optionally a second
user logs in with a password (password logins are allowed for that user only), and sessions can
get a PATH without some commands (a node without rsync, say).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import attrs


@attrs.define
class Sshd:
    host: str
    port: int
    user: str
    key: str
    dir: Path
    user_home: Path
    proc: subprocess.Popen
    #: The user who logs in with a password, and that password (when asked for).
    password_user: str | None = None
    password: str | None = attrs.field(default=None, repr=False)

    @property
    def creds(self) -> dict:
        return {"ssh_user": self.user, "ssh_private_key": self.key, "ssh_port": self.port}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


#: The programs the tests and benchmarks run for real, with where each is looked for (a path,
#: or a name on PATH) and the Debian package that brings it.
TOOLS = {
    "sshd": ("/usr/sbin/sshd", "openssh-server"),
    "ssh": ("ssh", "openssh-client"),
    "ssh-keygen": ("ssh-keygen", "openssh-client"),
    "sftp": ("sftp", "openssh-client"),
    "rsync": ("rsync", "rsync"),
    "ps": ("ps", "procps"),
    "ip": ("ip", "iproute2"),
    "hostname": ("hostname", "hostname"),
}
#: What a private sshd and the nodes reached through it need.
SSHD_TOOLS = ("sshd", "ssh", "ssh-keygen", "sftp", "rsync", "ps")


def missing_tools(*names: str) -> list[str]:
    """Those of the programs ``names`` (keys of :data:`TOOLS`) that are not installed here."""
    gone = []
    for name in names:
        where, _ = TOOLS[name]
        if not (Path(where).exists() if where.startswith("/") else shutil.which(where)):
            gone.append(name)
    return gone


def lacking(*names: str) -> str | None:
    """What stops running ``names`` (keys of :data:`TOOLS`) here, said so that it can be fixed:
    the programs missing and the apt-get command that installs them; or that this needs root.
    None when nothing is missing."""
    if os.geteuid() != 0:
        return "root (to run sshd and add test users): run the tests as root"
    gone = missing_tools(*names)
    if not gone:
        return None
    packages = sorted({TOOLS[n][1] for n in gone})
    return (f"{', '.join(f'`{n}` (package {TOOLS[n][1]})' for n in gone)}: install "
            f"{'it' if len(gone) == 1 else 'them'} with `apt-get install -y {' '.join(packages)}`")


def missing() -> str | None:
    """What is missing to run a private sshd here (see :func:`lacking`), or None."""
    return lacking(*SSHD_TOOLS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_keys(d: Path) -> Path:
    """A host key and a client key (``id_ed25519``) in ``d``; the client key authorized in
    ``d/authorized_keys`` (returned)."""
    for name in ("host_key", "id_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)],
                       check=True)
    auth = d / "authorized_keys"
    auth.write_text((d / "id_ed25519.pub").read_text())
    auth.chmod(0o644)
    return auth


def write_config(config: Path, port: int, address: str, d: Path, auth: Path, users: str,
                 extra: str = "") -> None:
    """An sshd config for a private sshd: keys from :func:`make_keys`, key logins for ``users``."""
    config.write_text(f"""Port {port}
ListenAddress {address}
HostKey {d}/host_key
PidFile {config}.pid
AuthorizedKeysFile {auth}
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin no
AllowUsers {users}
AllowTcpForwarding yes
Subsystem sftp internal-sftp
{extra}""")


def _user(name: str, fresh_home: bool) -> Path:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
    home = Path(pwd.getpwnam(name).pw_dir)
    if fresh_home:
        shutil.rmtree(home / ".rh", ignore_errors=True)
    return home


def _path_without(d: Path, commands: tuple[str, ...]) -> str:
    """A folder of links to every command of /usr/local/bin, /usr/bin and /bin but ``commands``."""
    folder = d / "bin"
    folder.mkdir(mode=0o755)
    for src in ("/usr/local/bin", "/usr/bin", "/bin"):
        for entry in sorted(Path(src).iterdir()) if Path(src).is_dir() else []:
            link = folder / entry.name
            if entry.name not in commands and not link.is_symlink():
                link.symlink_to(entry)
    return str(folder)


def start_sshd(user: str = "rhbyo", fresh_home: bool = True, extra_config: str = "",
               password_user: str | None = None, password: str | None = None,
               without: tuple[str, ...] = ()) -> Sshd:
    """Start a private sshd for ``user`` (created if needed); ``fresh_home`` empties its ~/.rh.

    ``password_user`` (created if needed) may also log in, with ``password``; ``without`` names
    commands the sessions' PATH lacks.
    """
    user_home = _user(user, fresh_home)
    subprocess.run(["usermod", "-p", "*", user], check=True)
    users = user
    match = ""
    if password_user:
        _user(password_user, fresh_home)
        subprocess.run(["chpasswd"], input=f"{password_user}:{password}\n", text=True,
                       check=True)
        users += f" {password_user}"
        match = f"Match User {password_user}\n    PasswordAuthentication yes\n"
    # Not under a private temp root: sshd reads authorized_keys as the user.
    d = Path(tempfile.mkdtemp(prefix="rh-sshd-"))
    d.chmod(0o755)
    if without:
        extra_config += f"\nSetEnv PATH={_path_without(d, without)}\n"
    auth = make_keys(d)
    port = _free_port()
    config = d / "sshd_config"
    write_config(config, port, "127.0.0.1", d, auth, users, f"LogLevel VERBOSE\n{extra_config}\n{match}")
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(config), "-E", str(d / "sshd.log")])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(d / 'sshd.log').read_text()[-2000:]}") \
                    from None
            time.sleep(0.05)
    return Sshd("127.0.0.1", port, user, str(d / "id_ed25519"), d, user_home, proc,
                password_user, password)
