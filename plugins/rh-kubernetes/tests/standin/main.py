"""Run the Kubernetes stand-in: ``python -m standin.main --dir DIR`` (as root, from the plugin's
tests folder). It serves HTTPS on 127.0.0.1 (and on its address on the pods' bridge, where pods
reach it as their in-cluster API) with a self-signed certificate, writes
``DIR/kubeconfig`` (contexts ``standin`` for the admin user and ``standin-limited`` for a user
RBAC refuses to create StatefulSets) and ``DIR/ready`` once it listens, and on SIGTERM stops
every pod it started (their processes, namespaces and the bridge) before it exits.

Namespaces: ``default`` and ``quota-ns`` (a ResourceQuota of ``requests.cpu: 1``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
from pathlib import Path

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.routing import Router

from rh_core.transport.tls import self_signed
from standin.api import routes
from standin.kubelet import Kubelet
from standin.store import USERS, Store


def kubeconfig(port: int, cert: Path) -> dict:
    ca = base64.b64encode(cert.read_bytes()).decode()
    tokens = {user: token for token, (user, _) in USERS.items()}
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "standin",
        "clusters": [{"name": "standin", "cluster": {
            "server": f"https://127.0.0.1:{port}", "certificate-authority-data": ca}}],
        "users": [{"name": u, "user": {"token": t}} for u, t in tokens.items()],
        "contexts": [{"name": "standin", "context": {"cluster": "standin", "user": "admin"}},
                     {"name": "standin-limited",
                      "context": {"cluster": "standin", "user": "limited"}}],
    }


async def main(folder: Path) -> None:
    store = Store()
    store.add_namespace("quota-ns", {"requests.cpu": "1"})
    kubelet = Kubelet(store, folder / "state")
    # Pods reach the API at the stand-in's address on their bridge, as a real pod reaches the
    # ``kubernetes`` Service; the certificate names both addresses.
    bridge = kubelet.net.host_ip
    cert, key = self_signed(folder / "tls", ["127.0.0.1", bridge])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    kubelet.api = (bridge, port, cert)
    config = Config()
    config.bind = [f"127.0.0.1:{port}", f"{bridge}:{port}"]
    config.certfile, config.keyfile = str(cert), str(key)
    config.accesslog = None
    config.websocket_max_message_size = 64 * 2**20
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    (folder / "kubeconfig").write_text(json.dumps(kubeconfig(port, cert), indent=2))
    runner = asyncio.create_task(kubelet.run())
    app = Router(routes(store, kubelet))
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    await asyncio.sleep(0.3)
    (folder / "ready").write_text(str(port))
    try:
        await server
    finally:
        runner.cancel()
        await asyncio.to_thread(kubelet.close)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", required=True, type=Path)
    args = p.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    os.chdir(args.dir)
    asyncio.run(main(args.dir))
