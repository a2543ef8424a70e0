"""The wheels a node needs to run the rh server, built once on the client and shipped, so the
node never needs a package index."""

from __future__ import annotations

import hashlib
import shlex
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
        if not any(folder.glob("uv-*.whl")) and not (folder / ".no-uv").exists():
            _add_uv(folder)  # a wheelhouse built before uv was shipped in it
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
    _add_uv(folder)
    done.write_text(key)
    return folder, key


def _add_uv(folder: Path) -> None:
    """uv's wheel (a binary) into the wheelhouse: it installs the wheelhouse in about a second
    where pip takes ten. Best effort: without it (no wheel for this platform, no index) nodes
    install with pip, and ``.no-uv`` says not to try again."""
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                           "--disable-pip-version-check", "--only-binary", ":all:", "--dest",
                           str(folder), "uv"], capture_output=True, text=True)
    if proc.returncode != 0 or not any(folder.glob("uv-*.whl")):
        (folder / ".no-uv").write_text(proc.stderr[-2000:])


def install_script(home: str, extras: str, key: str) -> str:
    """A POSIX shell script that installs ``rh-core[extras]`` from ``<home>/wheelhouse`` into
    the virtualenv ``<home>/venv`` with no package index, and marks it with ``key``: with the
    uv binary taken out of its wheel when there is one (about a second), else with pip from
    its wheel. An install that never finished is started over."""
    spec = shlex.quote(f"rh-core[{extras}]")
    unpack = ("import os,sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); "
              "n=[m for m in z.namelist() if m.endswith('.data/scripts/uv')][0]; "
              "open('bin/uv.new','wb').write(z.read(n)); os.chmod('bin/uv.new',0o755); "
              "os.replace('bin/uv.new','bin/uv')")
    return f"""
set -e
cd {home}
[ -f venv/.rh-wheelhouse ] || rm -rf venv  # an install that never finished (a full disk?)
rm -f venv/.rh-wheelhouse venv/.rh-wheelhouse.new
done=
uv_whl=$(ls wheelhouse/uv-*.whl 2>/dev/null | head -n 1)
if [ -n "$uv_whl" ] && mkdir -p bin && python3 -c {shlex.quote(unpack)} "$uv_whl" \
        && bin/uv --version >/dev/null 2>&1; then
    export UV_CACHE_DIR="$PWD/uv-cache"
    [ -x venv/bin/python ] || bin/uv venv --quiet --python "$(command -v python3)" \
        --python-preference only-system venv 2>&1
    bin/uv pip install --quiet --offline --python venv/bin/python --no-index \
        --find-links wheelhouse --reinstall pip {spec} 2>&1 && done=1
fi
if [ -z "$done" ]; then
    [ -x venv/bin/python ] || python3 -m venv --without-pip venv
    pip_whl=$(ls wheelhouse/pip-*.whl | head -n 1)
    venv/bin/python "$pip_whl/pip" install --quiet --no-index --find-links wheelhouse \
        --force-reinstall pip {spec} 2>&1
fi
echo {shlex.quote(key)} > venv/.rh-wheelhouse.new
mv venv/.rh-wheelhouse.new venv/.rh-wheelhouse
"""
