"""Caddy in front of the server, with the real Caddy from Debian on unprivileged loopback ports.

Only obtaining a certificate from an ACME CA for a domain cannot run here (no internet): for
that mode the generated Caddyfile is tested.
"""

from __future__ import annotations

import io
import json
import os
import ssl
import sys
import threading

import httpx
import pytest
import userfns
from rh_caddy import caddyfile
from waiting import wait_until

import rh_core as rh
from rh_core.builtin.local import process_alive
from rh_core.transport import tls


def _cluster(name, port, **kw):
    return rh.cluster(name=name, provider="local", use_caddy=True, server_port=port, **kw)


def _record(rh_home, name):
    return json.loads((rh_home / "clusters" / name / "server.json").read_text())


def test_plain_http_through_caddy(rh_home, free_port):
    c = _cluster("caddy-http", free_port, den_auth=True)
    try:
        assert rh.function(userfns.concat).to(c)("run", "house") == "runhouse"
        rec = _record(rh_home, "caddy-http")
        assert rec["public"]["port"] == free_port and rec["port"] != free_port
        assert rec["host"] == "127.0.0.1"  # the rh server itself stays on loopback
        assert c.client().info.base_url == f"http://127.0.0.1:{free_port}"
        token = c.grant("alice", "read")
        r = httpx.get(f"http://127.0.0.1:{free_port}/concat/call?a=run&b=house",
                      headers={"Authorization": f"Bearer {token}"})
        assert r.json() == "runhouse" and r.headers["server"].lower().startswith("caddy")
    finally:
        c.down()


def test_https_with_caddys_internal_ca(rh_home, free_port):
    c = _cluster("caddy-internal", free_port, server_connection_type="tls", den_auth=True)
    try:
        assert rh.function(userfns.add).to(c)(2, 3) == 5
        info = c.client().info
        assert info.base_url == f"https://127.0.0.1:{free_port}"
        assert info.verify.endswith("pki/authorities/local/root.crt")
        token = c.grant("bob", "read")
        ctx = ssl.create_default_context(cafile=info.verify)
        r = httpx.get(f"https://localhost:{free_port}/add/call?a=1&b=2", verify=ctx,
                      headers={"Authorization": f"Bearer {token}"})
        assert r.json() == 3
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"https://127.0.0.1:{free_port}/health")  # unknown CA: refused
    finally:
        c.down()


def test_https_with_given_certificate(rh_home, tmp_path, free_port):
    cert, key = tls.self_signed(tmp_path / "given", [])
    c = _cluster("caddy-files", free_port, server_connection_type="tls", den_auth=True,
                 ssl_certfile=str(cert), ssl_keyfile=str(key))
    try:
        assert rh.function(userfns.add).to(c)(20, 22) == 42
        assert c.client().info.verify == str(cert)
    finally:
        c.down()


def test_logs_stream_live_through_caddy(rh_home, tmp_path, free_port, monkeypatch):
    class Out(io.TextIOBase):
        text = ""

        def write(self, s):
            Out.text += s
            return len(s)

    monkeypatch.setattr(sys, "stdout", Out())
    c = _cluster("caddy-stream", free_port, den_auth=True)
    try:
        f = rh.function(userfns.print_then_wait).to(c)
        marker = tmp_path / "go"
        t = threading.Thread(target=f, args=(str(marker),), kwargs={"stream_logs": True})
        t.start()
        wait_until(lambda: "first line" in Out.text, 20, "the first line to arrive through Caddy")
        assert t.is_alive() and not marker.exists()  # it arrived while the call still runs
        marker.write_text("go")
        t.join(30)
        assert "second line" in Out.text
    finally:
        c.down()


def test_caddy_stops_with_the_server_and_a_leftover_is_replaced(rh_home, free_port):
    c = _cluster("caddy-life", free_port, den_auth=True)
    rh.function(userfns.add).to(c)
    pid_file = rh_home / "server" / "caddy-life" / "caddy" / "caddy.pid"
    caddy_pid = int(pid_file.read_text())
    server_pid = c.client().health()["pid"]
    os.kill(server_pid, 9)  # a crash leaves Caddy running, holding the port
    wait_until(lambda: not process_alive(server_pid), 10, "the killed server to exit")
    assert process_alive(caddy_pid)
    try:
        c.restart_server()  # the new server stops the leftover Caddy (same config) and starts its own
        assert rh.function(userfns.add).to(c)(1, 1) == 2
        new_pid = int(pid_file.read_text())
        assert new_pid != caddy_pid
        with pytest.raises(ProcessLookupError):
            os.kill(caddy_pid, 0)
    finally:
        c.down()
    wait_until(lambda: not process_alive(new_pid), 10, f"Caddy ({new_pid}) to stop with its server")


def test_caddyfile_for_a_domain_gets_acme_certificates(tmp_path):
    """ACME itself cannot run here: the generated configuration is what is checked."""
    text = caddyfile({"host": "0.0.0.0", "port": 443, "tls": "domain", "domain": "rh.example.org"},
                     32300, 2019, tmp_path)
    assert "\nrh.example.org {" in text
    assert "tls " not in text  # no certificate given: Caddy obtains one itself
    assert "reverse_proxy 127.0.0.1:32300" in text and "admin 127.0.0.1:2019" in text
    assert "default_bind 0.0.0.0" in text and "https_port 443" in text


def test_caddyfile_refuses_bad_settings(tmp_path):
    with pytest.raises(rh.ConfigError, match="tls must be one of"):
        caddyfile({"port": 1, "tls": "maybe"}, 1, 2, tmp_path)
    with pytest.raises(rh.ConfigError, match="needs a domain"):
        caddyfile({"port": 1, "tls": "domain"}, 1, 2, tmp_path)
