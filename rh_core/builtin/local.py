"""The ``local`` compute provider: the embedded cluster, a server on this machine.

The first client to need it starts ``python -m rh_server`` detached, on 127.0.0.1 and a free
port, and records it under ``$RH_HOME/clusters/<name>/``; every later client process reuses the
record. A record whose process is gone (or answers as someone else) is replaced.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import ClassVar

import attrs

from rh_core.errors import ConfigError, ConnectionFailedError
from rh_core.paths import rh_home
from rh_core.plugin.hookspecs import hookimpl
from rh_core.plugin.interfaces import ComputeProvider, Endpoint
from rh_core.resources.cluster import Cluster
from rh_core.transport import shm, tls, tokens

START_TIMEOUT = 60.0


@attrs.define(kw_only=True, slots=False)
class LocalCluster(Cluster):
    """The embedded cluster: an rh server on this machine, started on first use."""

    subtype: ClassVar[str] = "local"
    name: str | None = "local"


def process_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not; our own exited child is reaped)."""
    try:  # reap it if it is our own exited child
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cluster_from_record(name: str) -> LocalCluster:
    """The local cluster ``name`` with the settings its running server was started with (what
    the command line uses, where the Python code that made the cluster is not at hand)."""
    rec_path = rh_home() / "clusters" / name / "server.json"
    try:
        rec = json.loads(rec_path.read_text())
    except (OSError, ValueError):
        return LocalCluster(name=name)
    public = rec.get("public") or {}
    tls_on = bool(rec.get("certfile")) or public.get("scheme") == "https"
    return LocalCluster(
        name=name, den_auth=bool(rec.get("den_auth")),
        server_connection_type="tls" if tls_on else "none",
        server_host=public.get("bind_host") or rec.get("host") or "127.0.0.1",
        use_caddy=bool(public), server_port=public.get("port") if public else None,
        ssl_certfile=rec.get("certfile") if rec.get("certfile") and
        not rec["certfile"].startswith(str(rh_home() / "clusters")) else None,
        ssl_keyfile=None)


class LocalProvider(ComputeProvider):
    """Starts, finds and stops the server of a local cluster."""

    name = "local"
    cluster_class = LocalCluster

    @property
    def folder(self) -> Path:
        name = (self.cluster.short_name or "local").replace("/", "_")
        return rh_home() / "clusters" / name

    @property
    def record_path(self) -> Path:
        return self.folder / "server.json"

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    def _record(self) -> dict | None:
        try:
            return json.loads(self.record_path.read_text())
        except (OSError, ValueError):
            return None

    def _token(self) -> str:
        return tokens.cluster_token(f"local:{self.folder}")

    def endpoint(self) -> Endpoint | None:
        rec = self._record()
        if not rec or not process_alive(int(rec["pid"])):
            return None
        return self._endpoint(rec)

    def _endpoint(self, rec: dict) -> Endpoint:
        pub = rec.get("public")
        if pub:  # a plugin (Caddy) fronts the server: clients go through it
            return Endpoint(pub["host"], int(pub["port"]), self._token(), rec.get("shm_dir"),
                            pub.get("cert"))
        return Endpoint(rec["host"], int(rec["port"]), self._token(), rec.get("shm_dir"),
                        rec.get("certfile"))

    def _proxy_setting(self, host: str) -> dict | None:
        """What the rh-caddy plugin needs to front this cluster's server, or None."""
        c = self.cluster
        if not c.fronted:
            return None
        if not any(ep.name == "caddy" for ep in entry_points(group="rh")):
            raise ConfigError("use_caddy (or server_port 80/443) needs the rh-caddy plugin and "
                              "Caddy: pip install rh-caddy; apt-get install caddy")
        if c.server_connection_type == "tls":
            given = bool(c.ssl_certfile or c.ssl_keyfile)
            cert, key = self._tls_files() if given else (None, None)
            tls_mode = "files" if given else ("domain" if c.domain else "internal")
        else:
            cert = key = None
            tls_mode = "off"
        return {"host": host, "port": c.server_port or c.default_port, "tls": tls_mode,
                "cert": str(cert) if cert else None, "key": str(key) if key else None,
                "domain": c.domain}

    def _tls_files(self) -> tuple[Path | None, Path | None]:
        c = self.cluster
        if c.server_connection_type != "tls":
            return None, None
        if c.ssl_certfile or c.ssl_keyfile:
            if not (c.ssl_certfile and c.ssl_keyfile):
                raise ConfigError("give both ssl_certfile and ssl_keyfile, or neither")
            return Path(c.ssl_certfile).expanduser(), Path(c.ssl_keyfile).expanduser()
        hosts = [h for h in (c.server_host, c.domain) if h]
        return tls.self_signed(self.folder / "tls", hosts)

    def _shm_dir(self, create: bool = True) -> str | None:
        key = hashlib.sha256(str(self.folder).encode()).hexdigest()[:12]
        folder = shm.folder_for(key, create)
        return str(folder) if folder else None

    def _healthy(self, rec: dict) -> bool:
        """Whether the recorded process answers on its own port as itself. Asks the server
        directly on this machine (not through a proxy), sends no credentials, and so does not
        need to verify a TLS certificate to learn a PID."""
        host = "127.0.0.1" if rec["host"] in ("0.0.0.0", "::", "") else rec["host"]
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if rec.get("certfile") else "http"
        import httpx  # here: the server imports this module too, and never needs httpx

        try:
            r = httpx.get(f"{scheme}://{host}:{rec['port']}/health", timeout=2.0, verify=False)
            return r.status_code == 200 and r.json().get("pid") == rec["pid"]
        except (httpx.HTTPError, ValueError):
            return False

    def _check_settings(self, rec: dict) -> None:
        """A running server keeps the settings it was started with: say so when they differ."""
        c = self.cluster
        wanted = {"den_auth": c.den_auth,
                  "tls": c.server_connection_type == "tls",
                  "host": c.server_host or "127.0.0.1"}
        running = {"den_auth": bool(rec.get("den_auth")),
                   "tls": bool(rec.get("certfile") or (rec.get("public") or {}).get("scheme")
                               == "https"),
                   "host": (rec.get("public") or {}).get("bind_host") or rec["host"]}
        diff = {k: (running[k], wanted[k]) for k in wanted if running[k] != wanted[k]}
        if diff:
            parts = ", ".join(f"{k}: running {a!r}, asked {b!r}" for k, (a, b) in diff.items())
            raise ConfigError(
                f"the server of {c.name!r} already runs with other settings ({parts}); "
                f"restart it to apply yours: cluster.restart_server() or `rh restart {c.name}`")

    def up(self) -> Endpoint:
        rec, ep = self._record(), self.endpoint()
        if ep is not None and self._healthy(rec):
            self._check_settings(rec)
            return ep
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time across processes
            rec = self._record()
            ep = self.endpoint()
            if ep is not None:
                deadline = time.monotonic() + 10  # it may still be starting
                while not self._healthy(rec) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if not self._healthy(rec):
                    raise ConnectionFailedError(
                        f"the server of {self.cluster.name!r} (pid {rec['pid']}) runs but does "
                        f"not answer on port {rec['port']}; see {self.log_path}, or stop it "
                        f"with `rh down {self.cluster.name}`")
                self._check_settings(rec)
                return ep
            if rec is not None:
                self.record_path.unlink(missing_ok=True)  # stale: its process is gone
            return self._start()

    def _start(self) -> Endpoint:
        host = self.cluster.server_host or "127.0.0.1"
        if not _loopback(host) and not self.cluster.den_auth:
            raise ConfigError(
                f"the server of {self.cluster.name!r} would listen on {host}, reachable from other "
                f"machines, without tokens: set den_auth=True (and server_connection_type='tls')"
            )
        if importlib.util.find_spec("hypercorn") is None or importlib.util.find_spec("starlette") is None:
            raise ConfigError(
                "the local cluster needs the server's dependencies: pip install 'rh-core[server]'"
            )
        host = self.cluster.server_host or "127.0.0.1"
        port = self.cluster.server_port or 0
        token = self._token()
        proxy = self._proxy_setting(host)
        if proxy:  # the server stays on loopback; the proxy listens where clients connect
            host, port = "127.0.0.1", 0
        cmd = [sys.executable, "-m", "rh_server", "--host", host, "--port", str(port),
               "--name", self.cluster.short_name or "local", "--home", str(rh_home()),
               "--record", str(self.record_path), "--log-file", str(self.log_path)]
        if self.cluster.den_auth:
            cmd.append("--den-auth")
        if self.cluster.max_body_mb:
            cmd += ["--max-body-mb", str(self.cluster.max_body_mb)]
        cert, key = self._tls_files()
        for key, value in self.cluster.server_settings().items():
            cmd += ["--setting", f"{key}={json.dumps(value)}"]
        if proxy:
            cmd += ["--setting", "caddy=" + json.dumps(proxy)]
        elif cert:
            cmd += ["--certfile", str(cert), "--keyfile", str(key)]
        shm_dir = self._shm_dir()  # made last: every check above may still refuse
        if shm_dir:
            cmd += ["--shm-dir", shm_dir]
        cmd.append("--token-stdin")  # never in its environment or on its command line
        env = {k: v for k, v in os.environ.items() if k != "RH_SERVER_TOKEN"}
        with open(self.log_path, "ab") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=out, stderr=out,
                                    env=env, start_new_session=True, close_fds=True,
                                    cwd=self.folder)
        try:
            proc.stdin.write(f"{token}\n".encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it died at once: reported below with its log
        # The client's HTTP modules (httpx) load while the server boots, not after: the first
        # .to() needs them next. Here, not at the top: the server imports this module too.
        import rh_core.transport.client  # noqa: F401
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            rec = self._record()
            if rec and rec.get("pid") == proc.pid:
                return self._endpoint(rec)
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        if proc.poll() is None:
            proc.kill()
        if shm_dir:  # nothing half-made is left behind
            shm.clear(shm_dir, remove=True)
        raise ConnectionFailedError(
            f"the local rh server did not start (exit code {proc.poll()}). The end of its log "
            f"{self.log_path}:\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def down(self) -> None:
        rec = self._record()
        if not rec:
            folder = self._shm_dir(create=False)
            if folder:
                shm.clear(folder, remove=True)
            return
        pid = int(rec["pid"])
        if process_alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 15
            while process_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.record_path.unlink(missing_ok=True)
        if rec.get("shm_dir"):  # the server removes it when it stops; not when it was killed
            shm.clear(rec["shm_dir"], remove=True)

    def server_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@hookimpl
def rh_compute_providers(register):
    register(LocalProvider)
