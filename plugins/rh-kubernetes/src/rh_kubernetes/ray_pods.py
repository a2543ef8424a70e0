"""Ray across the pods of a cluster of several (``num_nodes > 1``): started by each pod's agent,
the head's first (its server then restarts to drive maps over Ray), the others joined to it,
then a wait on the head until every pod has joined. Maps spread over the pods as on byo
(``rh_server/ray_map.py``)."""

from __future__ import annotations

import json

from rh_core.errors import ConnectionFailedError

#: The head's Ray port (inside the pods' network: nothing outside reaches it).
RAY_PORT = 6379
JOIN_SECONDS = 120


def start(provider, pods: list[str]) -> str:
    """Ray on ``pods`` (head first); the head's address. Pods where Ray runs already keep it."""
    def ask(pod: str, path: str, spec: dict, what: str) -> dict:
        status, info = provider._agent(pod, "POST", path, timeout=JOIN_SECONDS + 60,
                                       body=json.dumps(spec).encode())
        if status != 200:
            raise ConnectionFailedError(f"{what} in pod {pod} failed: "
                                        f"{info.get('error') or info.get('output') or info}")
        return info

    address = ask(pods[0], "/ray", {"head": None, "port": RAY_PORT}, "starting the Ray head")[
        "address"]
    provider.each(lambda pod: ask(pod, "/ray", {"head": address}, "joining Ray"), pods[1:])
    ask(pods[0], "/ray/wait", {"nodes": len(pods), "seconds": JOIN_SECONDS},
        f"waiting for {len(pods)} pods to join Ray at {address}")
    return address
