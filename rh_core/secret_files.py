"""Writing credential files where their tools look for them (``~/.aws/credentials``,
``~/.kube/config``, ``~/.ssh/id_ed25519``...): on this machine (``secret.write()``) and, through
the server, on a cluster (``secret.to(cluster)``).

Every file is written atomically with mode 0600; folders it creates are 0700. An INI file
(AWS, Azure) gets only its own sections replaced, the rest of the file kept as it was, comments
included. A file whose content changes keeps its previous content next to it, in
``<file>.rh-backup`` (0600), so writing credentials never loses the ones that were there.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from rh_core.errors import ConfigError
from rh_core.paths import write_private

BACKUP_SUFFIX = ".rh-backup"
_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")


def resolve(path: str, home: Path, within_home: bool) -> Path:
    """``~/x`` or ``x`` under ``home``; an absolute path as it is, unless ``within_home``."""
    if path.startswith("~/") or path == "~":
        full = home / path[2:]
    elif os.path.isabs(path):
        full = Path(path)
    else:
        full = home / path
    full = Path(os.path.normpath(full))
    if within_home and not full.is_relative_to(Path(os.path.normpath(home))):
        raise ConfigError(f"{path!r} is not inside the home folder {home}: secret files are "
                          f"written under it (give '~/...' or a relative path)")
    return full


def merge_ini(existing: str, sections: dict[str, dict[str, str]]) -> str:
    """``existing`` with each of ``sections`` replaced by the given keys (added at the end when
    missing); every other line is kept."""
    for name, keys in sections.items():
        bad = [k for k, v in keys.items() if _breaks(k) or "=" in k or _breaks(v)]
        if _breaks(name) or "]" in name or bad:
            raise ConfigError(f"section {name!r:.40} cannot be written to an INI file: names and "
                              f"values must be one line (keys {bad} are not)")
    out: list[str] = []
    skipping = False
    done: set[str] = set()
    for line in existing.splitlines():
        m = _SECTION.match(line)
        if m:
            skipping = m.group(1).strip() in sections
            if skipping:
                out += _section(m.group(1).strip(), sections[m.group(1).strip()])
                done.add(m.group(1).strip())
                continue
        if not skipping:
            out.append(line)
    for name, keys in sections.items():
        if name not in done:
            if out and out[-1].strip():
                out.append("")
            out += _section(name, keys)
    return "\n".join(out).rstrip("\n") + "\n"


def _breaks(text: str) -> bool:
    return not isinstance(text, str) or "\n" in text or "\r" in text


def _section(name: str, keys: dict[str, str]) -> list[str]:
    return [f"[{name}]", *(f"{k} = {v}" for k, v in keys.items()), ""]


def place(path: str, home: Path, content: str | None = None,
          ini: dict[str, dict[str, str]] | None = None, within_home: bool = False) -> str:
    """Write one credential file: ``content`` as it is, or ``ini`` sections merged into what is
    there. Returns the file's full path. Unchanged content is not written again."""
    full = resolve(path, home, within_home)
    if full.is_dir():
        raise ConfigError(f"{full} is a folder; a secret's file cannot be written there")
    try:
        before = full.read_text()
    except FileNotFoundError:
        before = None
    except (UnicodeDecodeError, OSError) as e:
        raise ConfigError(f"{full} cannot be read to update it ({type(e).__name__}); move it "
                          f"away and send the secret again") from None
    text = merge_ini(before or "", ini) if ini is not None else content or ""
    _folders(full.parent)
    if before is not None and before != text:
        write_private(full.with_name(full.name + BACKUP_SUFFIX), before)
    if before != text:
        write_private(full, text)
    elif full.stat().st_mode & 0o077:
        os.chmod(full, 0o600)
    return str(full)


def _folders(folder: Path) -> None:
    """Make ``folder`` and any missing parents, each new one 0700 (existing ones untouched)."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for f in reversed(missing):
        f.mkdir(mode=0o700)
        os.chmod(f, 0o700)  # mkdir's mode is cut by the umask
