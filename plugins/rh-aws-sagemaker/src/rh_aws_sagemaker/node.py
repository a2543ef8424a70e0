"""The program a SageMaker training job of an rh cluster runs: its ContainerEntrypoint.

Run as ``python3 /opt/ml/input/data/rhcluster/node.py`` on every instance of the job, with only
the standard library, so any image with Python works and the job needs no package index.
SageMaker has put the job's two input channels in place before it starts:

- ``rh``: the wheels of ``rh-core[server]`` (``server,ray`` for several instances) and uv's,
  built once on the client;
- ``rhcluster``: this program, ``nodecode.py``, ``install.sh``
  (``rh_core.wheelhouse.install_script``) and the cluster's owner token.

It installs the wheels into a virtualenv (offline). On one instance it starts the rh server on
the container's loopback (``RH_SERVER_PORT``, reached through the SSM agent's port forwarding)
with ``--autostop-mins``, and exits with the server's exit code: the server stopping itself
after its idle time ends the job (status Completed) and so releases the instance.

On several instances (``hosts`` of ``/opt/ml/input/config/resourceconfig.json``), the first
(``algo-1``) starts a Ray head at its own address, waits until every instance has joined it,
then starts the rh server as above with ``RH_RAY_ADDRESS`` (``.map`` spreads over the instances,
``rh_server/ray_map.py``), and forwards each code root synced into it to the others
(``nodecode.py``). Every other instance joins its Ray node to the head (retrying while the head
is not up), receives the code roots, and stays until the head's Ray port has been unreachable
for ``RH_SM_HEAD_GONE_SECONDS``; then it stops the Ray processes it started and exits 0, so the
job ends when the head's server stops. SIGTERM (StopTrainingJob) stops what each started.

A failure is written to ``/opt/ml/output/failure``, which SageMaker shows as the job's
FailureReason.

``RH_SM_INPUT``, ``RH_SM_OUTPUT``, ``RH_NODE_HOME`` and ``RH_SM_RESOURCES`` move the folders and
the resource config; ``RH_SM_ADDRESSES`` (JSON: host name -> address) resolves host names
instead of DNS; ``RH_SM_RAY_TMP`` is Ray's temp folder (the tests and the benchmark run this
program on this machine).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

INPUT = os.environ.get("RH_SM_INPUT", "/opt/ml/input/data")
OUTPUT = os.environ.get("RH_SM_OUTPUT", "/opt/ml/output")
HOME = os.environ.get("RH_NODE_HOME", "/opt/ml/rh")
RESOURCES = os.environ.get("RH_SM_RESOURCES", "/opt/ml/input/config/resourceconfig.json")
ADDRESSES = json.loads(os.environ.get("RH_SM_ADDRESSES") or "{}")
NAME = os.environ.get("RH_CLUSTER_NAME", "rh")
PORT = int(os.environ.get("RH_SERVER_PORT", "32300"))
AUTOSTOP = os.environ.get("RH_AUTOSTOP_MINS", "")
PYTHON = os.environ.get("RH_PYTHON", "")
RAY_PORT = 6379
RAY_TMP = os.environ.get("RH_SM_RAY_TMP", "/tmp/rh-ray")
#: How long the instances have to join the head's Ray (installing rh on them included).
JOIN_SECONDS = float(os.environ.get("RH_SM_JOIN_SECONDS", "600"))
#: How long the head's Ray port may be unreachable before another instance ends.
HEAD_GONE_SECONDS = float(os.environ.get("RH_SM_HEAD_GONE_SECONDS", "20"))
VENV_PYTHON = os.path.join(HOME, "venv", "bin", "python")
#: The rh server's exit code that asks for it to be started again (rh_server.app.RESTART_EXIT).
RESTART_EXIT = 75

#: What this program started and stops on SIGTERM: the server, and Ray's session.
running = {"server": None, "ray": None, "code": None, "stopping": False}


def say(text):
    print(f"rh-node: {text}", flush=True)


def fail(text):
    """Say why the job cannot go on, where SageMaker shows it (FailureReason), and exit."""
    say(text)
    stop_ray()
    try:
        os.makedirs(OUTPUT, exist_ok=True)
        with open(os.path.join(OUTPUT, "failure"), "w") as f:
            f.write(f"rh: {text}"[:1000])
    except OSError:
        pass
    sys.exit(1)


def resources():
    """This instance's name in the job and every instance's (``algo-1`` is the head)."""
    try:
        with open(RESOURCES) as f:
            config = json.load(f)
        return config["current_host"], list(config["hosts"])
    except (OSError, ValueError, KeyError):
        return "algo-1", ["algo-1"]


def address(host, seconds=0.0):
    """The address of ``host`` (SageMaker makes ``algo-K`` resolvable), retrying for
    ``seconds`` while it does not resolve yet; None when it never did."""
    deadline = time.monotonic() + seconds
    while True:
        if host in ADDRESSES:
            return ADDRESSES[host]
        try:
            return socket.gethostbyname(host)
        except OSError:
            if time.monotonic() > deadline:
                return None
            time.sleep(1)


def reachable(ip, port, timeout=2.0):
    try:
        socket.create_connection((ip, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def session_pids(sid):
    """The processes of session ``sid`` (Ray's processes are not all children of ``ray
    start``, but stay in its session)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(entry))
    return out


def stop_ray():
    """Stop every process of the Ray session this program started (by its session id)."""
    proc, running["ray"] = running["ray"], None
    if proc is None:
        return
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        pids = session_pids(proc.pid)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            proc.poll()
            pids = session_pids(proc.pid)
            time.sleep(0.1)
    proc.poll()


def start_ray(args):
    """``ray start --block ARGS`` in a session of its own, its output in ``ray.log``."""
    log = open(os.path.join(HOME, "ray.log"), "ab")
    try:
        running["ray"] = subprocess.Popen(
            [os.path.join(HOME, "venv", "bin", "ray"), "start", "--block",
             "--disable-usage-stats", f"--temp-dir={RAY_TMP}", *args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    finally:
        log.close()
    return running["ray"]


def ray_log_tail():
    try:
        with open(os.path.join(HOME, "ray.log"), errors="replace") as f:
            return f.read()[-400:]
    except OSError:
        return ""


def on_term(signum, _frame):
    """StopTrainingJob: SageMaker sends SIGTERM to every instance, then SIGKILL after 120 s."""
    running["stopping"] = True
    server = running["server"]
    if server is not None and server.poll() is None:
        say("the job is stopping: stopping the rh server")
        server.terminate()
        return
    say("the job is stopping")
    stop_ray()
    sys.exit(0)


def see_image_packages(cfg):
    """Let the virtualenv see the image's own packages (torch in a PyTorch image), under
    rh's: the same as ``python -m venv --system-site-packages``."""
    with open(cfg) as f:
        lines = [line for line in f if not line.startswith("include-system-site-packages")]
    with open(cfg, "w") as f:
        f.writelines(lines + ["include-system-site-packages = true\n"])


def install(channel):
    t0 = time.monotonic()
    here = "%d.%d" % sys.version_info[:2]
    if PYTHON and PYTHON != here:
        fail(f"the image has Python {here}, but rh's wheels were built for Python {PYTHON}: "
             f"give the cluster an image_uri with Python {PYTHON}, or run rh with Python {here}")
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
    say(f"rh installed in {time.monotonic() - t0:.1f} s")


def start_head(me, hosts):
    """A Ray head at this instance's address; waits until every host joined. Its address."""
    ip = address(me, 60)
    if ip is None:
        fail(f"the head instance {me} cannot resolve its own name to an address")
    head = f"{ip}:{RAY_PORT}"
    start_ray(["--head", f"--port={RAY_PORT}", f"--node-ip-address={ip}",
               "--include-dashboard=false"])
    say(f"Ray head started at {head}; waiting for {len(hosts)} instances to join")
    t0 = time.monotonic()
    proc = subprocess.run([VENV_PYTHON, "-m", "rh_server.ray_map", "wait", head,
                           str(len(hosts)), str(JOIN_SECONDS)], capture_output=True, text=True)
    if proc.returncode != 0 or running["ray"].poll() is not None:
        joined = subprocess.run(
            [VENV_PYTHON, "-c", "import json, ray, sys; ray.init(address=sys.argv[1], "
             "logging_level='ERROR'); print(json.dumps([n['NodeManagerAddress'] for n in "
             "ray.nodes() if n['Alive']]))", head], capture_output=True, text=True)
        try:
            there = set(json.loads(joined.stdout.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            there = set()
        missing = [h for h in hosts if address(h) not in there] or hosts
        fail(f"instances {', '.join(missing)} did not join the Ray head on {me} ({head}) in "
             f"{JOIN_SECONDS:g} s: {(proc.stdout + proc.stderr)[-300:]} {ray_log_tail()}")
    say(f"all {len(hosts)} instances joined Ray in {time.monotonic() - t0:.1f} s")
    return head


def serve(ray_address=None):
    """The rh server on the loopback until it exits; exits with its code. A server that exits
    with code 75 (its owner asked ``POST /restart``: ``c.restart_server()``) is started again."""
    with open(os.path.join(INPUT, "rhcluster", "token")) as f:
        token = f.read().strip()
    args = [VENV_PYTHON, "-m", "rh_server", "--host", "127.0.0.1", "--port", str(PORT),
            "--name", NAME, "--home", HOME, "--token-stdin", "--setting", "supervised=true"]
    if AUTOSTOP:
        args += ["--autostop-mins", AUTOSTOP]
    env = dict(os.environ, RH_RAY_ADDRESS=ray_address) if ray_address else None
    while True:
        t0 = time.monotonic()
        server = running["server"] = subprocess.Popen(args, stdin=subprocess.PIPE, env=env,
                                                      start_new_session=True)
        server.stdin.write((token + "\n").encode())
        server.stdin.close()
        while server.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.05)
        if server.poll() is None:
            say(f"rh server of {NAME} answering on 127.0.0.1:{PORT} on {resources()[0]} "
                f"({time.monotonic() - t0:.1f} s after its start)")
        code = server.wait()
        if code != RESTART_EXIT or running["stopping"]:
            break
        say("the rh server stopped to be restarted (its owner asked): starting it again")
    say(f"the rh server exited with code {code}")
    stop_ray()
    sys.exit(code)


def join(me, hosts):
    """Join this instance's Ray node to the head's; stay until the head is gone."""
    head_host = hosts[0]
    deadline = time.monotonic() + JOIN_SECONDS
    ip = address(me, 60)
    head_ip = address(head_host, JOIN_SECONDS)
    if ip is None or head_ip is None:
        fail(f"{me} cannot resolve {head_host if ip else me} to an address")
    head = f"{head_ip}:{RAY_PORT}"
    say(f"joining the Ray head on {head_host} ({head})")
    while True:
        if reachable(head_ip, RAY_PORT):
            proc = start_ray([f"--address={head}", f"--node-ip-address={ip}"])
            time.sleep(3)
            if proc.poll() is None:
                break
            running["ray"] = None
        if time.monotonic() > deadline:
            fail(f"{me} could not reach the Ray head on {head_host} ({head}) in "
                 f"{JOIN_SECONDS:g} s: {ray_log_tail()}")
        time.sleep(1)
    say(f"{me} joined Ray at {head} as {ip}")
    gone_since, said = None, False
    while True:
        time.sleep(1)
        if running["ray"].poll() is not None and not said:
            said = True
            say(f"Ray on {me} exited with code {running['ray'].returncode}: {ray_log_tail()}")
        if reachable(head_ip, RAY_PORT):
            gone_since = None
            continue
        gone_since = gone_since or time.monotonic()
        if time.monotonic() - gone_since >= HEAD_GONE_SECONDS:
            say(f"the Ray head on {head_host} is gone: {me} stops")
            stop_ray()
            sys.exit(0)


def main():
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    channel = os.path.join(INPUT, "rhcluster")
    me, hosts = resources()
    install(channel)
    if len(hosts) <= 1:
        serve()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    # nodecode.py is shipped beside this program (the job's rhcluster channel), not installed:
    # only several instances need it.
    import nodecode

    with open(os.path.join(channel, "token")) as f:
        token = f.read().strip()
    if me == hosts[0]:
        ray_address = start_head(me, hosts)
        others = [address(h) for h in hosts[1:]]
        running["code"] = nodecode.start_forwarding(others, token, say)
        serve(ray_address)
    else:
        running["code"] = nodecode.start_receiving(address(me, 60), token, say)
        join(me, hosts)


if __name__ == "__main__":
    main()
