"""Built-in package installers: ``pip``, ``reqs``, ``local``, ``git`` and ``conda``.

They run on the cluster (inside the server) and install into an env's own virtualenv.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from rh_core.errors import PackageInstallError
from rh_core.plugin.hookspecs import hookimpl
from rh_core.plugin.interfaces import InstallTarget, PackageInstaller


def run_pip(args: list[str], target: InstallTarget, what: str) -> None:
    """``pip install`` into the target venv with the server's pip (the venv has none of its own)."""
    cmd = [sys.executable, "-m", "pip", "--python", target.python, "install",
           "--disable-pip-version-check", "--no-input", *args]
    target.log(f"installing {what}")
    proc = subprocess.run(cmd, cwd=target.cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        out = (proc.stdout + proc.stderr).strip()
        if "No space left on device" in out:
            free = shutil.disk_usage(target.venv).free // 2**20
            raise PackageInstallError(
                f"installing {what} failed: the disk holding {target.venv} is full ({free} MB "
                f"free). Free space there (old envs live next to it) and try again. pip said:\n"
                f"{out[-2000:]}"
            )
        raise PackageInstallError(
            f"installing {what} failed (pip exit code {proc.returncode}). pip said:\n{out[-4000:]}"
        )


def _resolve(spec: str, cwd: Path) -> Path:
    p = Path(spec).expanduser()
    return p if p.is_absolute() else (cwd / p)


def _tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and ".git" not in p.parts:
            st = p.stat()
            h.update(f"{p.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


class PipInstaller(PackageInstaller):
    """``numpy==2.1``, ``"torch>=2"``: a pip requirement."""

    name = "pip"

    def install(self, spec: str, target: InstallTarget) -> None:
        run_pip([spec], target, spec)


class ReqsInstaller(PackageInstaller):
    """``reqs:requirements.txt``: every line of a requirements file."""

    name = "reqs"

    def install(self, spec: str, target: InstallTarget) -> None:
        path = _resolve(spec, target.cwd)
        if not path.is_file():
            raise PackageInstallError(f"requirements file {path} does not exist on the cluster")
        run_pip(["-r", str(path)], target, f"requirements from {path}")

    def cache_key(self, spec: str, cwd: Path) -> str:
        path = _resolve(spec, cwd)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "absent"
        return f"{spec}#{digest}"


class LocalInstaller(PackageInstaller):
    """``local:./folder``: a project folder (pip-installed) or a plain folder (put on sys.path)."""

    name = "local"

    def install(self, spec: str, target: InstallTarget) -> None:
        path = _resolve(spec, target.cwd)
        if not path.is_dir():
            raise PackageInstallError(f"local package folder {path} does not exist on the cluster")
        if (path / "pyproject.toml").exists() or (path / "setup.py").exists():
            run_pip([str(path)], target, f"local package {path}")
        else:
            target.log(f"adding {path} to the env's sys.path")
            site = next(target.venv.glob("lib/python*/site-packages"))
            name = hashlib.sha256(str(path).encode()).hexdigest()[:8]
            (site / f"_rh_local_{name}.pth").write_text(f"{path}\n")

    def cache_key(self, spec: str, cwd: Path) -> str:
        path = _resolve(spec, cwd)
        return f"{path}#{_tree_hash(path) if path.is_dir() else 'absent'}"


class GitInstaller(PackageInstaller):
    """``git+URL@revision`` (or ``git:URL@revision``): a package from a git repository."""

    name = "git"

    def install(self, spec: str, target: InstallTarget) -> None:
        if shutil.which("git") is None:
            raise PackageInstallError("git is not installed on the cluster; install it or use pip")
        run_pip([f"git+{spec}"], target, f"git package {spec}")


class CondaInstaller(PackageInstaller):
    """``conda:NAME``: a conda package, where conda exists on the cluster."""

    name = "conda"

    def install(self, spec: str, target: InstallTarget) -> None:
        conda = shutil.which("conda") or shutil.which("micromamba") or shutil.which("mamba")
        if conda is None:
            raise PackageInstallError(
                f"cannot install conda package {spec!r}: conda is not present on the cluster "
                f"(no conda, mamba or micromamba on PATH). Use a pip package instead, or install "
                f"conda on the cluster first."
            )
        proc = subprocess.run([conda, "install", "-y", "-p", str(target.venv), spec],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise PackageInstallError(f"conda install {spec} failed:\n{proc.stderr[-4000:]}")


@hookimpl
def rh_package_installers(register):
    for cls in (PipInstaller, ReqsInstaller, LocalInstaller, GitInstaller, CondaInstaller):
        register(cls)
