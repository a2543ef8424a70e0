"""The errors rh-byo raises on purpose, and the messages that say what went wrong on a node and
what to do about it (a full disk, a refused command, a key that needs its passphrase)."""

from __future__ import annotations

import subprocess

from rh_core.errors import ConnectionFailedError, RhError
from rh_core.errors import DiskFullError as CoreDiskFullError

#: What a full disk makes every tool say.
NO_SPACE = "No space left on device"


class SSHError(ConnectionFailedError):
    """An SSH command could not run on the node (unreachable, auth refused, host key changed)."""


class DiskFullError(CoreDiskFullError):
    """The disk holding rh's folder (~/.rh) on a node is full (``rh.DiskFullError`` catches it
    too)."""


def free_space(node) -> tuple[int, int] | None:
    """``(free MB, size MB)`` of the disk holding ~/.rh on ``node`` (None when unknown)."""
    try:
        out = node.run('df -Pk "$HOME/.rh" 2>/dev/null || df -Pk "$HOME"', check=False,
                       timeout=30).stdout
        fields = out.strip().splitlines()[-1].split()
        return int(fields[3]) // 1024, int(fields[1]) // 1024
    except Exception:  # the message is still worth giving without the numbers
        return None


def disk_full_error(node, what: str) -> DiskFullError:
    """The error for ``what`` (a step) failing on ``node`` for lack of space, with the free space."""
    space = free_space(node)
    free = f"free {space[0]} MB of {space[1]} MB" if space else "free space unknown"
    return DiskFullError(
        f"the disk holding ~/.rh on {node.target} is full: {what} failed with '{NO_SPACE}'; "
        f"{free}. Free space there (old ~/.rh/code/* folders and ~/.rh/wheelhouse can go), or "
        f"make ~/.rh a link to a larger disk, then retry.")


def upload_failed(node, dest: str, text: str, put_bytes: int) -> RhError:
    """The error for a failed sftp upload: a full disk (sftp servers report it only as
    'Failure', so the free space decides), or the transfer's own message."""
    space = None if NO_SPACE in text else free_space(node)
    if NO_SPACE in text or (space is not None and space[0] * 2**20 < max(put_bytes, 2**20)):
        return disk_full_error(node, f"copying to {dest}")
    return SSHError(f"copying to {node.target}:{dest} over sftp failed: {text.strip()[-1500:]}")


def passphrase_needed(key: str) -> SSHError:
    """The error for a key that is protected by a passphrase nobody gave."""
    return SSHError(f"the key {key} is protected by a passphrase: give it as "
                    f"ssh_creds['ssh_private_key_passphrase'] (kept in memory, saved only to the "
                    f"keyring), or add the key to ssh-agent")


def checked(node, command: str, proc: subprocess.CompletedProcess,
            check: bool) -> subprocess.CompletedProcess:
    """``proc`` when it succeeded (or ``check`` is off), else the error to show: a full disk,
    or the command's exit code and output."""
    if check and proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip()
        if NO_SPACE in out:
            raise disk_full_error(node, f"`{command.strip()[:100]}`")
        raise SSHError(f"on {node.target}: `{command[:200]}` exited with {proc.returncode}: "
                       f"{out[-2000:]}")
    return proc
