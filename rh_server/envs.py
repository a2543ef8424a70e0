"""Virtualenvs for envs with packages, layered over the server's Python and cached by content."""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import site
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from rh_core.errors import PackageInstallError
from rh_core.plugin.interfaces import InstallTarget
from rh_core.plugin.registry import registry
from rh_core.resources.env import Package


def parent_site_dirs() -> list[str]:
    """The server's site-packages folders, which every env venv sees after its own."""
    dirs = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    for p in site.getsitepackages():
        if p not in dirs:
            dirs.append(p)
    return dirs


def env_python(spec: dict, home: Path, cwd: Path, log: Callable[[str], None]) -> str:
    """The Python an env's workers run: the server's own, or a venv built for its packages."""
    reqs = spec.get("reqs") or []
    if not reqs:
        return sys.executable
    packages = [Package.parse(r) for r in reqs]
    installers = [registry().installer(p.installer)() for p in packages]
    keys = [inst.cache_key(p.spec, cwd) for inst, p in zip(installers, packages, strict=True)]
    digest = hashlib.sha256(json.dumps([sys.executable, keys]).encode()).hexdigest()[:16]
    venv = home / "envs" / digest
    python = venv / "bin" / "python"
    ready = venv / ".rh-ready"
    if ready.exists():
        return str(python)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists():
            return str(python)
        shutil.rmtree(venv, ignore_errors=True)  # a half-built venv from a crash
        try:
            t0 = time.monotonic()
            subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                           check=True, capture_output=True)
            site_dir = next(venv.glob("lib/python*/site-packages"))
            (site_dir / "_rh_layer.pth").write_text(
                "".join(f"import site; site.addsitedir({d!r})\n" for d in parent_site_dirs())
            )
            target = InstallTarget(python=str(python), venv=venv, cwd=cwd, log=log)
            for inst, p in zip(installers, packages, strict=True):
                inst.install(p.spec, target)
            ready.write_text(json.dumps({"reqs": reqs, "seconds": time.monotonic() - t0}))
        except subprocess.CalledProcessError as e:
            shutil.rmtree(venv, ignore_errors=True)
            raise PackageInstallError(f"creating the env's virtualenv failed: {e.stderr!r}") from None
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
    return str(python)
