"""The agent in each pod of an rh Kubernetes cluster: the container's main process.

Run as ``python3 -c <this file>`` with only the standard library, so any image with Python
works and the pod needs no package index. It listens on the pod's loopback (``RH_AGENT_PORT``),
reached through the API server's port-forward, and answers (each request with the owner token
mounted from the cluster's Secret):

- ``GET /agent``: its state, the Python and platform of the image, the installed wheels' key;
- ``PUT /wheelhouse?key=K&extras=E&autostop=M``: a tar of wheels: a virtualenv over the image's
  packages is made from them (offline) and the rh server started on the pod's loopback
  (``RH_SERVER_PORT``), with the idle rule ``--autostop-mins M`` when ``M`` is above 0;
- ``POST /settings``: ``{"autostop_mins": M}``, kept in the pod's volume; a running server is
  started again with it (the served functions come back: the server saved them);
- ``GET /code/NAME`` and ``PUT /code/NAME?digest=D``: the digest of a synced code folder, and a
  tar that replaces it;
- ``POST /restart``: a new server process;
- ``POST /ray``: Ray on this pod (``{"head": ADDRESS or null, "port": P}``), once;
  ``POST /ray/wait`` on the head: until ``{"nodes": N}`` pods have joined.

A container restarted in the same pod finds the virtualenv in its emptyDir and starts the
server at once. When the server exits, the agent exits with its code, so Kubernetes restarts
the container (and reports a crash loop); except when it stopped by its idle rule (exit code 0
with autostop on): then the agent scales its own StatefulSet to 0 replicas through the
in-cluster API (``agent_kube.py``), so the pods go and cost nothing (not while a Ray request is
in progress: the cluster is coming up, and the server starts again). When that is refused or
fails, it says why in the pod's log and in ``GET /agent`` (``autostop_error``) and starts the
server again; if even that fails it exits non-zero, so Kubernetes restarts the container.
"""

import hmac
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import threading
import time
import urllib.error
import urllib.request

try:  # in the pod: the program registers agent_kube and agent_install as modules first
    from agent_install import KEY_FILE, VENV, install_wheelhouse, wait_for_ray
    from agent_kube import HOME, IS_HEAD, NAME, extract, restore_state, say, stop_by_autostop
except ImportError:  # imported from the package (tests, tools)
    from rh_kubernetes.agent_install import KEY_FILE, VENV, install_wheelhouse, wait_for_ray
    from rh_kubernetes.agent_kube import HOME, IS_HEAD, NAME, extract, restore_state, say, stop_by_autostop

SERVER_PORT = int(os.environ.get("RH_SERVER_PORT", "32300"))
AGENT_PORT = int(os.environ.get("RH_AGENT_PORT", "32301"))
TOKEN_FILE = os.environ.get("RH_TOKEN_FILE", "/mnt/rh-token/token")
CODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SETTINGS_FILE = os.path.join(HOME, "settings.json")


def read_token():
    with open(TOKEN_FILE) as f:
        return f.read().strip()


class Agent:
    def __init__(self):
        self.lock = threading.Lock()
        self.state = "waiting for the wheelhouse"
        self.error = self.server = None
        self.extras, self.ray = "server", None
        self.stopping = False
        self.autostop_error = None  # why the last scale-down by autostop failed
        self.joining = []  # Ray requests in progress: the cluster is coming up, not idle

    def settings(self):
        try:
            with open(SETTINGS_FILE) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def save_settings(self, settings):
        with open(SETTINGS_FILE + ".new", "w") as f:
            json.dump(settings, f)
        os.replace(SETTINGS_FILE + ".new", SETTINGS_FILE)

    def autostop_mins(self, here=True):  # here: None on a pod that is not the head, too
        mins = self.settings().get("autostop_mins")
        ok = (IS_HEAD or not here) and isinstance(mins, (int, float)) and mins > 0
        return mins if ok else None

    def key(self):
        try:
            with open(KEY_FILE) as f:
                return f.read().strip()
        except OSError:
            return None

    def info(self):
        return {"state": self.state, "error": self.error, "key": self.key(),
                "python": "%d.%d" % sys.version_info[:2], "platform": sysconfig.get_platform(),
                "server_pid": self.server.pid if self.server else None, "home": HOME,
                "autostop_mins": self.autostop_mins(here=False), "autostop_error": self.autostop_error}

    def install(self, tar_path, key, extras):
        self.state = "installing"
        install_wheelhouse(tar_path, key, extras)

    def start_server(self):
        with open(KEY_FILE) as f:
            lines = f.read().split()
        self.extras = lines[1] if len(lines) > 1 else "server"
        env = dict(os.environ)
        if self.ray:
            env["RH_RAY_ADDRESS"] = self.ray
        argv = [os.path.join(VENV, "bin", "python"), "-m", "rh_server", "--host", "127.0.0.1",
                "--port", str(SERVER_PORT), "--name", NAME, "--home", HOME, "--token-stdin"]
        mins = self.autostop_mins()
        if mins:
            argv += ["--autostop-mins", repr(mins)]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, env=env, cwd=HOME,
                                start_new_session=True)
        proc.stdin.write((read_token() + "\n").encode())
        proc.stdin.close()
        self.server = proc
        self.state = "running"
        self.error = None
        threading.Thread(target=self.watch, args=(proc,), daemon=True).start()

    def wait_healthy(self, timeout=60):
        """Wait until the new server answers its health route (it binds a moment after it
        starts); raise when it exits or does not answer in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server is None or self.server.poll() is not None:
                raise RuntimeError("the rh server exited as it started: see the pod's log")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{SERVER_PORT}/health", timeout=2)
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the rh server did not answer on port {SERVER_PORT} in {timeout} s")

    def stop_server(self):
        proc, self.server = self.server, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def watch(self, proc):
        code = proc.wait()
        if self.server is proc and not self.stopping:
            if code == 0 and self.autostop_mins():
                self.autostopped(proc)
                return
            say(f"the rh server exited with code {code}")
            os._exit(code or 1)

    def autostopped(self, proc):
        """The server ``proc`` stopped by its idle rule: scale the StatefulSet to 0 (the pods
        go); when that fails, say why and start the server again."""
        with self.lock:
            if self.stopping or self.server is not proc:
                return  # replaced meanwhile (a restart, a new wheelhouse)
            self.server = None
            self.state = "stopping by autostop"
            joining = bool(self.joining)  # up() starts Ray through this agent: not idle
            failed = joining or stop_by_autostop(self.autostop_mins())
            self.autostop_error = None if joining else failed
            if failed:
                try:
                    self.start_server()
                    self.wait_healthy()
                except Exception as e2:  # noqa: BLE001 - the container restarts instead
                    say(f"starting the rh server again failed: {e2}; exiting so that "
                        f"Kubernetes restarts the container")
                    os._exit(1)
                say("rh server started again: this pod keeps serving")
                return
            self.state = "stopped by autostop"


AGENT = Agent()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass  # the pod log is the server's; the agent says only what matters

    def answer(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def authorized(self):
        given = self.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {read_token()}".encode()):
            return True
        self.answer(401, {"error": "the owner token is needed"})
        return False

    def body_to_file(self, path):
        left = int(self.headers.get("Content-Length", "0"))
        with open(path, "wb") as f:
            while left:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    raise ConnectionError("the upload ended early")
                f.write(chunk)
                left -= len(chunk)

    def parts(self):
        path, _, query = self.path.partition("?")
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        return path, params

    def do_GET(self):
        if not self.authorized():
            return
        path, _ = self.parts()
        if path == "/agent":
            return self.answer(200, AGENT.info())
        if path.startswith("/code/") and CODE_NAME.fullmatch(path[6:]):
            try:
                with open(os.path.join(HOME, "code", path[6:], ".rh-digest")) as f:
                    digest = f.read().strip()
            except OSError:
                digest = None
            return self.answer(200, {"digest": digest,
                                     "path": os.path.join(HOME, "code", path[6:])})
        self.answer(404, {"error": f"no route {path}"})

    def do_PUT(self):
        if not self.authorized():
            return
        path, params = self.parts()
        if path == "/wheelhouse":
            return self.wheelhouse(params)
        if path.startswith("/code/") and CODE_NAME.fullmatch(path[6:]):
            return self.code(path[6:], params.get("digest", ""))
        self.answer(404, {"error": f"no route {path}"})

    def do_POST(self):
        if not self.authorized():
            return
        path, _ = self.parts()
        if path == "/restart":
            with AGENT.lock:
                AGENT.stopping = True
                AGENT.stop_server()
                AGENT.stopping = False
                AGENT.start_server()
                AGENT.wait_healthy()
            return self.answer(200, AGENT.info())
        if path in ("/ray", "/ray/wait"):
            length = int(self.headers.get("Content-Length", "0"))
            spec = json.loads(self.rfile.read(length) or b"{}")
            AGENT.joining.append(path)  # (a list: appending and removing are atomic)
            try:
                return self.start_ray(spec) if path == "/ray" else self.wait_ray(spec)
            finally:
                AGENT.joining.remove(path)
        if path == "/settings":
            length = int(self.headers.get("Content-Length", "0"))
            return self.change_settings(json.loads(self.rfile.read(length) or b"{}"))
        self.answer(404, {"error": f"no route {path}"})

    def change_settings(self, wanted):
        mins = wanted.get("autostop_mins")
        if mins is not None and (isinstance(mins, bool) or not isinstance(mins, (int, float))):
            return self.answer(400, {"error": f"autostop_mins must be a number, got {mins!r}"})
        with AGENT.lock:
            if mins == AGENT.autostop_mins(False) or (not mins and not AGENT.autostop_mins(False)):
                return self.answer(200, AGENT.info())
            AGENT.save_settings({**AGENT.settings(), "autostop_mins": mins or 0})
            say(f"autostop set to {mins:g} idle minutes" if mins and mins > 0 else
                "autostop off")
            if AGENT.server is not None:
                AGENT.stopping = True
                AGENT.stop_server()
                AGENT.stopping = False
                AGENT.start_server()
                AGENT.wait_healthy()
        self.answer(200, AGENT.info())

    def wheelhouse(self, params):
        upload = os.path.join(HOME, ".wheelhouse.tar")
        self.body_to_file(upload)
        with AGENT.lock:
            try:
                AGENT.stopping = True
                AGENT.stop_server()
                AGENT.install(upload, params.get("key", "unknown"), params.get("extras", "server"))
                AGENT.save_settings({**AGENT.settings(),
                                     "autostop_mins": float(params.get("autostop") or 0)})
                AGENT.start_server()
                AGENT.wait_healthy()
            except Exception as e:  # noqa: BLE001 - told to the client, which shows it
                AGENT.state, AGENT.error = "failed", str(e)
                say(f"installing the wheelhouse failed: {e}")
                return self.answer(500, AGENT.info())
            finally:
                AGENT.stopping = False
        say(f"rh server started (wheelhouse {params.get('key')})")
        self.answer(200, AGENT.info())

    def code(self, name, digest):
        folder = os.path.join(HOME, "code", name)
        staging = folder + ".new"
        upload = folder + ".tar"
        os.makedirs(os.path.dirname(folder), exist_ok=True)
        self.body_to_file(upload)
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        try:
            with tarfile.open(upload) as tar:
                extract(tar, staging)
        except (ValueError, tarfile.TarError) as e:
            shutil.rmtree(staging, ignore_errors=True)
            return self.answer(400, {"error": str(e)})
        finally:
            os.unlink(upload)
        with open(os.path.join(staging, ".rh-digest"), "w") as f:
            f.write(digest)
        old = folder + ".old"
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(folder):
            os.rename(folder, old)
        os.rename(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
        self.answer(200, {"digest": digest, "path": folder})

    def start_ray(self, spec):
        ray = os.path.join(VENV, "bin", "ray")
        if not os.path.exists(ray):
            return self.answer(409, {"error": "Ray is not installed in this pod"})
        if AGENT.ray:  # up() again: Ray runs here already
            return self.answer(200, {"address": AGENT.ray})
        ip = os.environ.get("RH_POD_IP") or "127.0.0.1"
        port = int(spec.get("port", 6379))
        head = spec.get("head")
        args = [ray, "start", "--block", "--disable-usage-stats", f"--node-ip-address={ip}",
                "--temp-dir", os.path.join(HOME, "ray")]
        args += [f"--address={head}"] if head else ["--head", f"--port={port}",
                                                    "--include-dashboard=false"]
        out = open(os.path.join(HOME, "ray.log"), "ab")
        subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, cwd=HOME)
        with AGENT.lock:
            AGENT.ray = head or f"{ip}:{port}"
            if not head and AGENT.server is not None:  # the head's server drives maps over Ray
                AGENT.stopping = True
                AGENT.stop_server()
                AGENT.stopping = False
                AGENT.start_server()
        self.answer(200, {"address": AGENT.ray})

    def wait_ray(self, spec):
        code, out = wait_for_ray(AGENT.ray, int(spec["nodes"]), float(spec.get("seconds", 120)))
        self.answer(200 if code == 0 else 504, {"output": out})


def stop(*_):
    """The pod is going (deleted, evicted): the server and its workers end at once, so a call
    still running loses its connection and the client asks Kubernetes why."""
    AGENT.stopping = True
    if AGENT.server is not None:
        try:
            os.killpg(AGENT.server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(0)


def main():
    os.makedirs(HOME, exist_ok=True)
    signal.signal(signal.SIGTERM, stop)
    if not AGENT.key():
        restore_state()
    if AGENT.key():
        say("the virtualenv is in place (a restarted container): starting the rh server")
        AGENT.start_server()
    else:
        say(f"waiting for the wheelhouse on 127.0.0.1:{AGENT_PORT}")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", AGENT_PORT), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
