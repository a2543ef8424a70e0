"""The wheels a node needs to run the rh server, built once on the client and shipped, so the
node never needs a package index."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import rh_core
from rh_core.errors import PackageInstallError
from rh_core.paths import rh_home


def source_and_key(extras: str = "server") -> tuple[str, str]:
    """What to build rh-core from (the source tree this rh_core was imported from, for
    development installs, else the released version) and a key that changes with it and with
    the extras (``server``, or ``server,ray`` for clusters of several nodes)."""
    root = Path(rh_core.__file__).resolve().parent.parent
    project = root / "pyproject.toml"
    if project.exists() and 'name = "rh-core"' in project.read_text():
        h = hashlib.sha256(project.read_bytes())
        for folder in ("rh_core", "rh_server"):
            for p in sorted((root / folder).rglob("*")):
                if p.is_file() and "__pycache__" not in p.parts:
                    h.update(f"{p.relative_to(root)}:{p.stat().st_mtime_ns}".encode())
        key = f"{rh_core.__version__}-src-{h.hexdigest()[:12]}"
        return str(root), key if extras == "server" else f"{key}-{extras.replace(',', '-')}"
    version = metadata.version("rh-core")
    key = version if extras == "server" else f"{version}-{extras.replace(',', '-')}"
    return f"rh-core=={version}", key


def build(log=print, extras: str = "server") -> tuple[Path, str]:
    """``(folder of wheels, key)`` for ``rh-core[extras]`` and pip; built once per key."""
    source, key = source_and_key(extras)
    folder = rh_home() / "wheelhouse" / key
    done = folder / ".complete"
    if done.exists():
        return folder, key
    folder.mkdir(parents=True, exist_ok=True)
    log(f"building the server's wheelhouse ({key})")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
         "--wheel-dir", str(folder), f"{source}[{extras}]" if "==" not in source else
         f"rh-core[{extras}]=={source.split('==')[1]}", "pip"],
        capture_output=True, text=True)
    if proc.returncode != 0:
        raise PackageInstallError(f"building the wheelhouse for the node failed:\n"
                                  f"{(proc.stdout + proc.stderr)[-3000:]}")
    done.write_text(key)
    return folder, key
