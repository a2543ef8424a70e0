"""The program a SageMaker training job of an rh cluster runs: its ContainerEntrypoint.

Run as ``python3 /opt/ml/input/data/rhcluster/node.py`` with only the standard library, so any
image with Python works and the job needs no package index. SageMaker has put the job's two
input channels in place before it starts:

- ``rh``: the wheels of ``rh-core[server]`` (and uv's), built once on the client;
- ``rhcluster``: this program, ``install.sh`` (``rh_core.wheelhouse.install_script``) and the
  cluster's owner token.

It installs the wheels into a virtualenv (offline), starts the rh server on the container's
loopback (``RH_SERVER_PORT``, reached through the SSM agent's port forwarding) with
``--autostop-mins``, and exits with the server's exit code: the server stopping itself after
its idle time ends the job (status Completed) and so releases the instance. A failure before
the server runs is written to ``/opt/ml/output/failure``, which SageMaker shows as the job's
FailureReason.

``RH_SM_INPUT``, ``RH_SM_OUTPUT`` and ``RH_NODE_HOME`` move the three folders (the tests and the
benchmark run this program on this machine).
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

INPUT = os.environ.get("RH_SM_INPUT", "/opt/ml/input/data")
OUTPUT = os.environ.get("RH_SM_OUTPUT", "/opt/ml/output")
HOME = os.environ.get("RH_NODE_HOME", "/opt/ml/rh")
NAME = os.environ.get("RH_CLUSTER_NAME", "rh")
PORT = int(os.environ.get("RH_SERVER_PORT", "32300"))
AUTOSTOP = os.environ.get("RH_AUTOSTOP_MINS", "")
PYTHON = os.environ.get("RH_PYTHON", "")


def say(text):
    print(f"rh-node: {text}", flush=True)


def fail(text):
    """Say why the job cannot go on, where SageMaker shows it (FailureReason), and exit."""
    say(text)
    try:
        os.makedirs(OUTPUT, exist_ok=True)
        with open(os.path.join(OUTPUT, "failure"), "w") as f:
            f.write(f"rh: {text}"[:1000])
    except OSError:
        pass
    sys.exit(1)


def host():
    """This instance's name in the job (algo-1 is the head)."""
    try:
        with open("/opt/ml/input/config/resourceconfig.json") as f:
            return json.load(f)["current_host"]
    except (OSError, ValueError, KeyError):
        return "algo-1"


def see_image_packages(cfg):
    """Let the virtualenv see the image's own packages (torch in a PyTorch image), under
    rh's: the same as ``python -m venv --system-site-packages``."""
    with open(cfg) as f:
        lines = [line for line in f if not line.startswith("include-system-site-packages")]
    with open(cfg, "w") as f:
        f.writelines(lines + ["include-system-site-packages = true\n"])


def main():
    t0 = time.monotonic()
    here = "%d.%d" % sys.version_info[:2]
    if PYTHON and PYTHON != here:
        fail(f"the image has Python {here}, but rh's wheels were built for Python {PYTHON}: "
             f"give the cluster an image_uri with Python {PYTHON}, or run rh with Python {here}")
    channel = os.path.join(INPUT, "rhcluster")
    os.makedirs(HOME, exist_ok=True)
    os.chdir(HOME)
    wheels = os.path.join(HOME, "wheelhouse")
    if os.path.islink(wheels) or os.path.exists(wheels):
        os.unlink(wheels)
    os.symlink(os.path.join(INPUT, "rh"), wheels)
    proc = subprocess.run(["sh", os.path.join(channel, "install.sh")], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        fail(f"installing rh from its wheels failed: {(proc.stdout + proc.stderr)[-700:]}")
    see_image_packages(os.path.join(HOME, "venv", "pyvenv.cfg"))
    installed = time.monotonic()
    say(f"rh installed in {installed - t0:.1f} s")
    with open(os.path.join(channel, "token")) as f:
        token = f.read().strip()
    args = [os.path.join(HOME, "venv", "bin", "python"), "-m", "rh_server", "--host",
            "127.0.0.1", "--port", str(PORT), "--name", NAME, "--home", HOME, "--token-stdin"]
    if AUTOSTOP:
        args += ["--autostop-mins", AUTOSTOP]
    server = subprocess.Popen(args, stdin=subprocess.PIPE, start_new_session=True)
    server.stdin.write((token + "\n").encode())
    server.stdin.close()

    def stop(signum, _frame):
        # StopTrainingJob: SageMaker sends SIGTERM, then SIGKILL after 120 s.
        say("the job is stopping: stopping the rh server")
        server.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while server.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=2)
            break
        except OSError:
            time.sleep(0.05)
    if server.poll() is None:
        say(f"rh server of {NAME} answering on 127.0.0.1:{PORT} on {host()} "
            f"({time.monotonic() - installed:.1f} s after the install)")
    code = server.wait()
    say(f"the rh server exited with code {code}")
    sys.exit(code)


if __name__ == "__main__":
    main()
