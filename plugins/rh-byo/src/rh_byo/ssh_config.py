"""``ssh <cluster-name>`` from a terminal: a ``Host`` entry for each byo cluster that is up.

Bring-up writes the head node's entry (address, user, port, key, rh's known_hosts with
``StrictHostKeyChecking yes``, the proxy when there is one) into a file rh owns,
``$RH_HOME/ssh/config`` (mode 0600); ``down()`` removes it. The user's ``~/.ssh/config`` gets one
``Include`` line for that file, at its top (where it applies to every host), with a comment
saying what it is: added once, never twice, the rest of the file kept as it was. The
environment variable ``RH_SSH_CONFIG`` names another file to add the line to, or ``none`` to
leave the user's files alone (then include rh's file yourself).

No entry is written for a cluster known by a ``Host`` of the user's own (``ssh_host_alias``, or a
``Host`` line naming the cluster in the user's config: the user's own stays in charge), or whose
name is not a plain host name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shlex
import warnings
from pathlib import Path
from typing import Iterator

from rh_byo.ssh import jump_command
from rh_core.paths import rh_home, write_atomic, write_private

#: Names another file than ``~/.ssh/config`` to add the Include line to; ``none``: no file.
ENV = "RH_SSH_CONFIG"
MARK = "# rh cluster "
HEADER = ("# Written by rh: one Host per byo cluster that is up (ssh <cluster-name>); an entry\n"
          "# goes with cluster.down(). Edits here are lost; put your own hosts in ~/.ssh/config.\n")
INCLUDE_COMMENT = "# Added by rh: the hosts of rh's byo clusters, so that `ssh <cluster-name>` works."
_PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def rh_config() -> Path:
    """rh's own ssh config file, the one the user's config includes."""
    return rh_home() / "ssh" / "config"


def user_config() -> Path | None:
    """The user's ssh config that gets the Include line (None: leave the user's files alone)."""
    value = os.environ.get(ENV)
    if value is None:
        return Path.home() / ".ssh" / "config"
    if value.strip().lower() in ("", "none"):
        return None
    return Path(value).expanduser()


def _arg(value: str) -> str:
    """A value as ssh_config reads it: in double quotes when it has blanks."""
    return f'"{value}"' if re.search(r"\s", value) else value


def host_entry(name: str, host: str, creds: dict) -> str:
    """The ``Host`` entry that reaches ``host`` as rh does, under ``name``."""
    known_hosts = rh_home() / "ssh" / "known_hosts"
    lines = [f"{MARK}{name}: written at bring-up, removed by cluster.down()", f"Host {name}",
             f"    HostName {host}"]
    if creds.get("ssh_user"):
        lines.append(f"    User {creds['ssh_user']}")
    if creds.get("ssh_port"):
        lines.append(f"    Port {int(creds['ssh_port'])}")
    if creds.get("ssh_private_key"):
        lines += [f"    IdentityFile {_arg(str(Path(creds['ssh_private_key']).expanduser()))}",
                  "    IdentitiesOnly yes"]
    lines += [f"    UserKnownHostsFile {_arg(str(known_hosts))}", "    StrictHostKeyChecking yes"]
    if creds.get("ssh_proxy_jump"):  # as rh reaches it: the hop with the same key and known_hosts
        lines.append(f"    ProxyCommand {jump_command(creds['ssh_proxy_jump'], creds, known_hosts, 'yes')}")
    if creds.get("ssh_proxy_command"):
        lines.append(f"    ProxyCommand {creds['ssh_proxy_command']}")
    return "\n".join(lines) + "\n"


def _entries(text: str) -> dict[str, str]:
    """rh's file, entry by entry (cluster name -> its lines)."""
    entries: dict[str, str] = {}
    name = None
    for line in text.splitlines(keepends=True):
        if line.startswith(MARK):
            name = line[len(MARK):].split(":", 1)[0].strip()
            entries[name] = ""
        if name is not None:
            entries[name] += line
    return {n: e.rstrip("\n") + "\n" for n, e in entries.items()}


@contextlib.contextmanager
def _rh_file() -> Iterator[dict[str, str]]:
    """rh's file as entries to change, written back afterwards; one process at a time."""
    path = rh_config()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path.with_name("config.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = path.read_text() if path.exists() else ""
        entries = _entries(old)
        yield entries
        new = HEADER + "".join(f"\n{e}" for e in entries.values())
        if new != old:
            write_private(path, new)


def user_hosts(path: Path) -> set[str]:
    """The host names the ``Host`` lines of an ssh config file name (patterns left out)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return set()
    names = set()
    for line in text.splitlines():
        words = re.split(r"[\s=]+", line.strip(), maxsplit=1)
        if len(words) == 2 and words[0].lower() == "host":
            names.update(w for w in shlex.split(words[1], comments=True)
                         if not any(c in w for c in "*?!"))
    return names


def includes(text: str, target: Path) -> bool:
    """Whether an ssh config's text has an ``Include`` of ``target``."""
    for line in text.splitlines():
        words = re.split(r"[\s=]+", line.strip(), maxsplit=1)
        if len(words) == 2 and words[0].lower() == "include":
            try:
                paths = shlex.split(words[1], comments=True)
            except ValueError:
                continue
            if any(Path(p).expanduser() == target for p in paths):
                return True
    return False


def ensure_included(user: Path, target: Path) -> None:
    """Add ``Include target`` at the top of ``user`` (with a comment), unless it is there;
    makes the file (and its folder, mode 0700) when missing. A link is followed, so the file
    it points to is the one changed; the file keeps its mode."""
    real = user.resolve() if user.is_symlink() else user
    old = real.read_text() if real.exists() else ""
    if includes(old, target):
        return
    if not real.parent.exists():
        real.parent.mkdir(mode=0o700, parents=True)
    mode = real.stat().st_mode & 0o777 if real.exists() else 0o600
    write_atomic(real, f"{INCLUDE_COMMENT}\nInclude {_arg(str(target))}\n" + (f"\n{old}" if old else ""),
                 mode)
    os.chmod(real, mode)  # what it was, whatever the umask


def add_host(cluster) -> None:
    """Write the head node's entry of a byo cluster that is up, and make sure the user's ssh
    config includes rh's file. A failure is a warning: bring-up does not need it."""
    creds, name, host = cluster.ssh_creds, cluster.short_name, cluster.ips[0]
    user = user_config()
    if (not name or not _PLAIN.match(name) or name in cluster.ips or creds.get("ssh_host_alias")
            or (user is not None and name in user_hosts(user))):
        return
    try:
        with _rh_file() as entries:
            entries[name] = host_entry(name, host, creds)
        if user is not None:
            ensure_included(user, rh_config())
    except (OSError, UnicodeError) as e:  # an unreadable or odd ~/.ssh/config, a full disk
        warnings.warn(f"could not set up `ssh {name}` ({e}); add `Include {rh_config()}` at the "
                      f"top of your ~/.ssh/config yourself", stacklevel=2)


def remove_host(name: str) -> None:
    """Remove a cluster's entry from rh's file (nothing to do when it has none)."""
    if rh_config().exists():
        with _rh_file() as entries:
            entries.pop(name, None)
