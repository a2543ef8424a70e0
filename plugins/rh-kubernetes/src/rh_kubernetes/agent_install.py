"""The agent's installer: rh's shipped wheels made into a virtualenv in the pod, offline, with
uv taken from its wheel (pip from its wheel where uv cannot run). Standard library only:
``manifests.py`` ships it with ``agent.py`` in the container's ``python3 -c`` program, as the
module ``agent_install``.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

try:  # in the pod: the program registers agent_kube.py as a module first (manifests.py)
    from agent_kube import HOME, extract
except ImportError:  # imported from the package
    from rh_kubernetes.agent_kube import HOME, extract

VENV = os.path.join(HOME, "venv")
KEY_FILE = os.path.join(VENV, ".rh-wheelhouse")


def run(argv, env=None):
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed ({proc.returncode}):\n"
                           f"{(proc.stdout + proc.stderr)[-3000:]}")


def install_wheelhouse(tar_path, key, extras):
    """The virtualenv from the wheels in ``tar_path`` (pip itself comes from them too)."""
    wheels = os.path.join(HOME, "wheelhouse")
    shutil.rmtree(wheels, ignore_errors=True)
    os.makedirs(wheels)
    with tarfile.open(tar_path) as tar:
        extract(tar, wheels)
    os.unlink(tar_path)
    if os.path.exists(VENV):
        shutil.rmtree(VENV)
    # Over the image's own packages (torch in a PyTorch image is importable by user code);
    # rh's dependencies are installed in the virtualenv whatever the image has.
    run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", VENV])
    if not install_with_uv(wheels, extras):
        pip = [os.path.join(wheels, n) for n in sorted(os.listdir(wheels))
               if n.startswith("pip-")]
        if not pip:
            raise RuntimeError("the wheelhouse has no pip wheel")
        run([os.path.join(VENV, "bin", "python"), os.path.join(pip[0], "pip"), "install",
             "--quiet", "--disable-pip-version-check", "--no-index", "--find-links", wheels,
             "--ignore-installed", "pip", f"rh-core[{extras}]"])
    with open(KEY_FILE + ".new", "w") as f:
        f.write(key + "\n" + extras + "\n")
    os.replace(KEY_FILE + ".new", KEY_FILE)
    shutil.rmtree(wheels, ignore_errors=True)

def install_with_uv(wheels, extras):
    """Install with the uv binary from its wheel when the wheelhouse has one (about a
    second, where pip takes ten); False when it has none or uv cannot run here."""
    found = [n for n in os.listdir(wheels) if n.startswith("uv-") and n.endswith(".whl")]
    if not found:
        return False
    uv = os.path.join(HOME, "bin", "uv")
    os.makedirs(os.path.dirname(uv), exist_ok=True)
    with zipfile.ZipFile(os.path.join(wheels, found[0])) as z:
        name = [m for m in z.namelist() if m.endswith(".data/scripts/uv")][0]
        with open(uv + ".new", "wb") as f:
            f.write(z.read(name))
    os.chmod(uv + ".new", 0o755)
    os.replace(uv + ".new", uv)
    try:
        run([uv, "pip", "install", "--quiet", "--offline", "--no-index", "--find-links",
             wheels, "--python", os.path.join(VENV, "bin", "python"), "--reinstall",
             "pip", "rh-core[%s]" % extras],
            env=dict(os.environ, UV_CACHE_DIR=os.path.join(HOME, "uv-cache")))
    except (OSError, RuntimeError):
        return False
    return True


def wait_for_ray(address, nodes, seconds):
    """Until ``nodes`` pods have joined the Ray at ``address`` (rh_server.ray_map's wait, run
    with the virtualenv's Python): its exit code and the end of its output."""
    proc = subprocess.run(
        [os.path.join(VENV, "bin", "python"), "-m", "rh_server.ray_map", "wait", address,
         str(nodes), str(seconds)], capture_output=True, text=True, cwd=HOME)
    return proc.returncode, (proc.stdout + proc.stderr)[-2000:]
