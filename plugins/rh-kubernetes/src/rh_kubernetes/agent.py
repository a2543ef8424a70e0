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
- ``POST /ray``: Ray on this pod (``{"head": ADDRESS or null, "port": P}``).

A container restarted in the same pod finds the virtualenv in its emptyDir and starts the
server at once. When the server exits, the agent exits with its code, so Kubernetes restarts
the container (and reports a crash loop); except when it stopped by its idle rule (exit code 0
with autostop on): then the agent scales its own StatefulSet to 0 replicas through the
in-cluster API (the pod's service-account token, ``ca.crt`` and ``KUBERNETES_SERVICE_HOST`` /
``_PORT``, as Kubernetes mounts and sets them), so the pods go and cost nothing. When that is
refused or fails, it says why in the pod's log and in ``GET /agent`` (``autostop_error``) and
starts the server again, so the pod never sits without a server; if even that fails it exits
non-zero, so Kubernetes restarts the container.
"""

import base64
import hmac
import http.server
import io
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import sysconfig
import tarfile
import threading
import time
import urllib.error
import urllib.request
import zipfile

HOME = os.environ.get("RH_HOME", "/mnt/rh")
NAME = os.environ.get("RH_CLUSTER_NAME", "rh")
SERVER_PORT = int(os.environ.get("RH_SERVER_PORT", "32300"))
AGENT_PORT = int(os.environ.get("RH_AGENT_PORT", "32301"))
TOKEN_FILE = os.environ.get("RH_TOKEN_FILE", "/mnt/rh-token/token")
VENV = os.path.join(HOME, "venv")
KEY_FILE = os.path.join(VENV, ".rh-wheelhouse")
CODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SETTINGS_FILE = os.path.join(HOME, "settings.json")
#: Where Kubernetes mounts the pod's service-account token, its CA and namespace.
SA_DIR = os.environ.get("RH_SA_DIR", "/var/run/secrets/kubernetes.io/serviceaccount")
STATEFULSET = os.environ.get("RH_STATEFULSET", NAME)
STATE_MAP = os.environ.get("RH_STATE_CONFIGMAP")
STATE_KEY = "state.tar.gz"
#: What a ConfigMap holds at most is 1 MiB; base64 makes it a third larger.
STATE_LIMIT = 700 * 1024


def say(text):
    print(f"rh-agent: {text}", flush=True)


def read_token():
    with open(TOKEN_FILE) as f:
        return f.read().strip()


class Agent:
    def __init__(self):
        self.lock = threading.Lock()
        self.state = "waiting for the wheelhouse"
        self.error = None
        self.server = None
        self.extras = "server"
        self.ray = None
        self.stopping = False
        #: Why the last scale-down by autostop failed (None: it did not).
        self.autostop_error = None

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

    def autostop_mins(self):
        mins = self.settings().get("autostop_mins")
        return mins if isinstance(mins, (int, float)) and mins > 0 else None

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
                "autostop_mins": self.autostop_mins(), "autostop_error": self.autostop_error}

    def install(self, tar_path, key, extras):
        """The virtualenv from the wheels in ``tar_path`` (pip itself comes from them too)."""
        self.state = "installing"
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
        if not self.install_with_uv(wheels, extras):
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

    def install_with_uv(self, wheels, extras):
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
            say(f"the rh server stopped after {self.autostop_mins():g} idle minutes (autostop): "
                f"scaling StatefulSet {STATEFULSET} to 0 replicas")
            try:
                save_state()
                scale_to_zero()
            except Exception as e:  # noqa: BLE001 - said in the log and in GET /agent
                self.autostop_error = (
                    f"autostop could not scale StatefulSet {STATEFULSET} to 0 replicas: {e}. "
                    f"The pod's service account "
                    f"({os.environ.get('RH_SERVICE_ACCOUNT') or 'default'}) needs get and "
                    f"patch on statefulsets/scale (API group apps) for {STATEFULSET} (see "
                    f"docs/clusters/kubernetes.md); the server was started again, and "
                    f"autostop tries again after the next idle period")
                say(self.autostop_error)
                try:
                    self.start_server()
                    self.wait_healthy()
                except Exception as e2:  # noqa: BLE001 - the container restarts instead
                    say(f"starting the rh server again failed: {e2}; exiting so that "
                        f"Kubernetes restarts the container")
                    os._exit(1)
                say("rh server started again: this pod keeps serving")
                return
            self.autostop_error = None
            self.state = "stopped by autostop"
            say(f"StatefulSet {STATEFULSET} scaled to 0 replicas: this pod goes; c.up() or the "
                f"next call brings the cluster back")


def kube_request(method, path, body=None, content_type="application/json"):
    """One request to the in-cluster API as the pod's service account: the answer's JSON;
    raises with the API's own message when refused."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise RuntimeError("KUBERNETES_SERVICE_HOST is not set: the pod cannot reach the API")
    try:
        with open(os.path.join(SA_DIR, "token")) as f:
            token = f.read().strip()
    except OSError as e:
        raise RuntimeError(f"no service-account token at {SA_DIR} ({e.strerror}): is "
                           f"automountServiceAccountToken off for the pod?") from None
    if ":" in host:
        host = f"[{host}]"
    url = f"https://{host}:{port}{path}"
    request = urllib.request.Request(
        url, data=None if body is None else json.dumps(body).encode(), method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type,
                 "Accept": "application/json"})
    context = ssl.create_default_context(cafile=os.path.join(SA_DIR, "ca.crt"))
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("message") or e.reason
        except ValueError:
            message = e.reason
        raise RuntimeError(f"the API answered {e.code}: {message}") from None
    except (OSError, ssl.SSLError) as e:
        raise RuntimeError(f"the API at {url} cannot be reached: {e}") from None


def namespace():
    ns = os.environ.get("RH_NAMESPACE")
    if not ns:
        with open(os.path.join(SA_DIR, "namespace")) as f:
            ns = f.read().strip()
    return ns


def scale_to_zero():
    """PATCH the StatefulSet's ``scale`` to 0 replicas."""
    kube_request("PATCH", f"/apis/apps/v1/namespaces/{namespace()}/statefulsets/{STATEFULSET}"
                          f"/scale", {"spec": {"replicas": 0}}, "application/merge-patch+json")


def state_tar():
    """What the server served and the code synced for it (``server/NAME/resources`` and
    ``code``), as a gzipped tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for part in (os.path.join("server", NAME, "resources"), "code"):
            folder = os.path.join(HOME, part)
            if not os.path.isdir(folder):
                continue
            for entry in sorted(os.listdir(folder)):
                if not entry.endswith((".new", ".old", ".tar")):
                    tar.add(os.path.join(folder, entry), arcname=os.path.join(part, entry))
    return buf.getvalue()


def _state_map(data=None):
    """Read the state ConfigMap, or write ``data`` (bytes; empty: clear it) into it."""
    path = f"/api/v1/namespaces/{namespace()}/configmaps/{STATE_MAP}"
    current = kube_request("GET", path)
    if data is None:
        return current
    current["binaryData"] = {STATE_KEY: base64.b64encode(data).decode()} if data else {}
    return kube_request("PUT", path, current)


def save_state():
    """Keep what the server served in the state ConfigMap, so that the next pod serves it
    again; says why not when it cannot (the cluster still stops)."""
    if not STATE_MAP:
        return
    try:
        data = state_tar()
        if len(data) > STATE_LIMIT:
            say(f"the served functions and their code ({len(data) // 1024} KiB packed) are too "
                f"large for ConfigMap {STATE_MAP}: send them again with .to() after the "
                f"cluster comes back")
            return
        _state_map(data)
        say(f"served functions kept in ConfigMap {STATE_MAP} ({len(data) // 1024} KiB)")
    except Exception as e:  # noqa: BLE001 - the cluster still stops; said in the log
        say(f"could not keep the served functions in ConfigMap {STATE_MAP}: {e}; send them "
            f"again with .to() after the cluster comes back")


def restore_state():
    """A new pod of a cluster stopped by autostop: take what the last pod kept, then empty the
    ConfigMap (it is for one comeback)."""
    if not STATE_MAP or not os.path.exists(os.path.join(SA_DIR, "token")):
        return
    try:
        data = (_state_map().get("binaryData") or {}).get(STATE_KEY)
        if not data:
            return
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(data)), mode="r:gz") as tar:
            extract(tar, HOME)
        _state_map(b"")
        say(f"served functions taken back from ConfigMap {STATE_MAP}")
    except Exception as e:  # noqa: BLE001 - the pod starts empty; said in the log
        say(f"could not take the served functions back from ConfigMap {STATE_MAP}: {e}")


def extract(tar, dest):
    """Unpack ``tar`` into ``dest``, refusing members that would land outside it or that are
    not plain files, folders or links inside it."""
    root = os.path.realpath(dest)
    for m in tar.getmembers():
        target = os.path.realpath(os.path.join(root, m.name))
        if not (target == root or target.startswith(root + os.sep)):
            raise ValueError(f"refusing {m.name!r}: outside the folder")
        if not (m.isfile() or m.isdir() or m.issym()):
            raise ValueError(f"refusing {m.name!r}: not a file, folder or symlink")
        if m.issym() and os.path.isabs(m.linkname):
            raise ValueError(f"refusing {m.name!r}: an absolute link")
    tar.extractall(root)


def run(argv, env=None):
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed ({proc.returncode}):\n"
                           f"{(proc.stdout + proc.stderr)[-3000:]}")


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
        if path == "/ray":
            length = int(self.headers.get("Content-Length", "0"))
            return self.start_ray(json.loads(self.rfile.read(length) or b"{}"))
        if path == "/settings":
            length = int(self.headers.get("Content-Length", "0"))
            return self.change_settings(json.loads(self.rfile.read(length) or b"{}"))
        self.answer(404, {"error": f"no route {path}"})

    def change_settings(self, wanted):
        mins = wanted.get("autostop_mins")
        if mins is not None and (isinstance(mins, bool) or not isinstance(mins, (int, float))):
            return self.answer(400, {"error": f"autostop_mins must be a number, got {mins!r}"})
        with AGENT.lock:
            if mins == AGENT.autostop_mins() or (not mins and not AGENT.autostop_mins()):
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
