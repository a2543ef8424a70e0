"""The stand-in's ``pods/{name}/portforward`` websocket, speaking ``v4.channel.k8s.io`` as the
kubelet does: for the i-th port of ``?ports=``, channel 2i carries data and 2i+1 errors; the
first frame of each channel is the port, two bytes little-endian; every later frame is one
channel byte and the payload. Each port is a TCP connection to 127.0.0.1:PORT inside the pod's
network namespace (the server there listens on the pod's loopback only); a refused connection
is said on the error channel and the stream closed, as the kubelet does.

Refusals before the upgrade (no token, RBAC, no such pod, a pod that does not run) are HTTP
answers with a ``Status`` body, as the API server gives them.
"""

from __future__ import annotations

import asyncio
import json

from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from standin.store import Refused, status

PROTOCOL = "v4.channel.k8s.io"
CHUNK = 1 << 20


def endpoint(store, kubelet):
    async def handle(ws: WebSocket):
        ns, name = ws.path_params["ns"], ws.path_params["name"]
        try:
            store.authorize(ws.headers.get("authorization"), "create", "pods/portforward", ns)
            pod = store.get(ns, "pods", name)
            if pod["status"].get("phase") != "Running":
                raise Refused(status(400, "BadRequest", f"pod {name} is not running"))
            ports = [int(p) for p in ws.query_params.get("ports", "").split(",") if p]
            if not ports:
                raise Refused(status(400, "BadRequest", "missing ports"))
        except Refused as e:
            await ws.send_denial_response(Response(json.dumps(e.body), e.body["code"],
                                                   media_type="application/json"))
            return
        offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
        if PROTOCOL not in offered:
            await ws.send_denial_response(Response("v4.channel.k8s.io is the one protocol here",
                                                   400))
            return
        await ws.accept(subprotocol=PROTOCOL)
        for i, port in enumerate(ports):
            for channel in (2 * i, 2 * i + 1):
                await ws.send_bytes(bytes([channel]) + port.to_bytes(2, "little"))
        writers = {}
        pumps = []
        for i, port in enumerate(ports):
            try:
                reader, writer = await kubelet.connect(ns, name, port)
            except OSError as e:
                uid = pod["metadata"]["uid"]
                await ws.send_bytes(bytes([2 * i + 1]) + (
                    f"error forwarding port {port} to pod {name}, uid {uid}: failed to connect "
                    f"to localhost:{port} inside the pod's network namespace: {e}").encode())
                await ws.close()
                return
            writers[2 * i] = writer
            pumps.append(asyncio.create_task(_to_ws(reader, ws, 2 * i)))
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data and data[0] in writers and len(data) > 1:
                    writers[data[0]].write(data[1:])
                    await writers[data[0]].drain()
        except (WebSocketDisconnect, ConnectionError):
            pass
        finally:
            for w in writers.values():
                w.close()
            for p in pumps:
                p.cancel()

    return handle


async def _to_ws(reader: asyncio.StreamReader, ws: WebSocket, channel: int) -> None:
    """The pod's bytes to the websocket; when the pod's side closes, so does the stream."""
    prefix = bytes([channel])
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            await ws.send_bytes(prefix + data)
    except (ConnectionError, RuntimeError):
        return
    try:
        await ws.close()
    except RuntimeError:
        pass
