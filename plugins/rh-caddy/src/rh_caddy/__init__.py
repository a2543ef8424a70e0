"""rh-caddy: Caddy as the reverse proxy in front of an rh server.

The server side of the plugin: when the server is started with the setting ``caddy`` (the local
provider passes it for clusters with ``use_caddy=True`` or ``server_port`` 80/443), the
``rh_server_startup`` hook writes a Caddyfile, starts ``caddy run`` and waits until it answers,
then publishes where clients connect (``settings["public"]``). ``rh_server_shutdown`` stops the
Caddy it started, by PID. The rh server itself stays on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from rh_core import hookimpl
from rh_core.errors import ConfigError

log = logging.getLogger("rh_server.caddy")

START_TIMEOUT = 30.0
TLS_MODES = ("off", "internal", "files", "domain")


def caddyfile(setting: dict, upstream_port: int, admin_port: int, storage: Path) -> str:
    """The Caddyfile for one cluster. ``setting``: host, port, tls (off, internal, files,
    domain), cert, key, domain."""
    tls_mode = setting.get("tls", "off")
    if tls_mode not in TLS_MODES:
        raise ConfigError(f"caddy tls must be one of {TLS_MODES}, got {tls_mode!r}")
    host, port = setting.get("host") or "127.0.0.1", int(setting["port"])
    port_option = "http_port" if tls_mode == "off" else "https_port"
    lines = [
        "{",
        f"\tadmin 127.0.0.1:{admin_port}",
        f"\tstorage file_system {storage}",
        "\tskip_install_trust",
        "\tauto_https disable_redirects",
        f"\t{port_option} {port}",
        f"\tdefault_bind {host}",
        "}",
        "",
    ]
    if tls_mode == "off":
        site, tls_line = f"http://:{port}", None
    elif tls_mode == "files":
        if not (setting.get("cert") and setting.get("key")):
            raise ConfigError("caddy tls 'files' needs cert and key")
        site, tls_line = f"https://:{port}", f"\ttls {setting['cert']} {setting['key']}"
    elif tls_mode == "internal":
        names = ["localhost", "127.0.0.1"]
        if host not in ("0.0.0.0", "::", "127.0.0.1", "localhost"):
            names.append(host)
        if setting.get("domain"):
            names.append(setting["domain"])
        site, tls_line = ", ".join(f"https://{n}:{port}" for n in names), "\ttls internal"
    else:  # domain: Caddy obtains a certificate for it from an ACME CA
        if not setting.get("domain"):
            raise ConfigError("caddy tls 'domain' needs a domain")
        site, tls_line = f"{setting['domain']}:{port}" if port != 443 else setting["domain"], None
    lines.append(f"{site} {{")
    if tls_line:
        lines.append(tls_line)
    lines += [
        # Streams (logs, generator items) have no Content-Length, which Caddy flushes as they
        # come without being told; `flush_interval -1` would also do it, but Caddy 2.6 then at
        # times drops a plain response's body under load ("use of closed network connection").
        f"\treverse_proxy 127.0.0.1:{upstream_port}",
        "}",
        "",
    ]
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _stop_recorded(folder: Path) -> None:
    """Stop a Caddy a previous server of this cluster started and left behind (crash), by PID,
    only if that PID still runs Caddy with our config."""
    pid_file = folder / "caddy.pid"
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return
    if "caddy" in cmdline and str(folder / "Caddyfile") in cmdline:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)


class _Running:
    proc: subprocess.Popen | None = None


_running = _Running()


@hookimpl
def rh_server_startup(server):
    setting = server.settings.get("caddy")
    if not setting:
        return
    caddy = shutil.which("caddy")
    if caddy is None:
        raise ConfigError("Caddy is not installed on this node (apt-get install caddy)")
    folder = server.rh_home / "server" / server.cluster_name / "caddy"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _stop_recorded(folder)
    storage = folder / "data"
    admin_port = _free_port()
    config = folder / "Caddyfile"
    config.write_text(caddyfile(setting, server.port, admin_port, storage))
    env = dict(os.environ, HOME=str(folder), XDG_DATA_HOME=str(folder / "xdg-data"),
               XDG_CONFIG_HOME=str(folder / "xdg-config"))
    env.pop("RH_SERVER_TOKEN", None)
    log_file = open(folder / "caddy.log", "ab")
    proc = subprocess.Popen([caddy, "run", "--config", str(config), "--adapter", "caddyfile"],
                            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env,
                            cwd=folder)
    log_file.close()
    (folder / "caddy.pid").write_text(str(proc.pid))
    _running.proc = proc
    tls_mode = setting.get("tls", "off")
    root = storage / "pki" / "authorities" / "local" / "root.crt"
    port = int(setting["port"])
    host = setting.get("host") or "127.0.0.1"
    probe = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        ready = tls_mode != "internal" or root.exists()
        try:
            with socket.create_connection((probe, port), timeout=0.5):
                if ready:
                    break
        except OSError:
            pass
        time.sleep(0.05)
    else:
        proc.terminate()
    if proc.poll() is not None:
        tail = (folder / "caddy.log").read_text(errors="replace")[-3000:]
        raise ConfigError(f"Caddy did not start (exit code {proc.returncode}):\n{tail}")
    cert = {"internal": str(root), "files": setting.get("cert")}.get(tls_mode)
    server.settings["public"] = {
        "host": setting.get("domain") if tls_mode == "domain" else probe,
        "port": port,
        "scheme": "http" if tls_mode == "off" else "https",
        "cert": cert,
        "bind_host": host,
    }
    log.info("caddy (pid %s) fronts the server on %s:%s, tls %s", proc.pid, host, port, tls_mode)


@hookimpl
def rh_server_shutdown(server):
    proc = _running.proc
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    folder = server.rh_home / "server" / server.cluster_name / "caddy"
    (folder / "caddy.pid").unlink(missing_ok=True)
    _running.proc = None
