"""A recording stand-in of the SkyPilot SDK functions rh calls, for rh-skypilot's tests and
benchmark (named by ``RH_SKYPILOT_SDK=sky_standin``).

What it implements, with SkyPilot 0.14's signatures and return shapes:

- ``launch(task, cluster_name, idle_minutes_to_autostop, fast, ...)``, ``status(cluster_names,
  refresh, _include_credentials)``, ``stop``, ``down``, ``autostop`` return request ids;
  ``get(request_id)`` and ``stream_and_get(request_id, output_stream=...)`` carry the request
  out and return its result (``stream_and_get`` first writes provisioning lines to the stream
  as SkyPilot's request log does, with one of its ``<sky-payload>`` spinner lines).
- A launched cluster's nodes are the hosts of the state's ``nodes`` (a real sshd on loopback,
  or in network namespaces): its status record carries a handle with
  ``stable_internal_external_ips``, ``stable_ssh_ports`` and ``head_ip``, and SSH credentials
  (user, key path, key content, proxy command) as SkyPilot's ``status(...,
  _include_credentials=True)`` gives them; the resources' labels, ``autostop``, ``nodes``.
- The task's ``run`` is started on the head node over SSH as SkyPilot's job would be (with
  ``SKYPILOT_NODE_RANK=0``); ``down`` and ``stop`` end that job (by the PID it got) as
  terminating the node would.
- Failures are scripted: ``state["fail"][function] = [exception class of sky.exceptions,
  message, failover history length]`` makes that function's request raise SkyPilot's own
  exception.
- Every call is recorded in ``state["calls"]``.

What it does not: provision anything, pick clouds (no optimizer), check resources against a
catalog, run SkyPilot's skylet (its autostop is only recorded), refresh from a cloud.

The state is a JSON file in the folder ``RH_SKY_STANDIN`` names, so a CLI run in a
subprocess sees the clusters a test launched.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from pathlib import Path

from sky import exceptions
from sky.utils import status_lib


def _path() -> Path:
    return Path(os.environ["RH_SKY_STANDIN"]) / "state.json"


def load() -> dict:
    p = _path()
    state = json.loads(p.read_text()) if p.exists() else {}
    for k, v in (("clusters", {}), ("calls", []), ("requests", {}), ("fail", {}),
                 ("nodes", [])):
        state.setdefault(k, v)
    return state


def save(state: dict) -> None:
    p = _path()
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(p)


def configure(nodes: list[dict] | None = None, fail: dict | None = None,
              no_credentials: bool = False) -> None:
    """Set the hosts launched clusters get (``{"host", "port", "user", "key"}`` each; the
    first is every cluster's head), scripted failures, and whether status records lack SSH
    credentials (as SkyPilot's do when it lost the cluster's key); keeps recorded calls."""
    state = load()
    if nodes is not None:
        state["nodes"] = nodes
    state["fail"], state["no_credentials"] = dict(fail or {}), no_credentials
    save(state)


def calls(name: str | None = None) -> list[list]:
    """The recorded calls (``[function, arguments]``), or those of function ``name``."""
    return [c for c in load()["calls"] if name is None or c[0] == name]


def _request(fn: str, args: dict) -> str:
    state = load()
    state["calls"].append([fn, args])
    rid = f"req-{len(state['calls'])}-{fn}"
    state["requests"][rid] = [fn, args]
    save(state)
    return rid


# ------------------------------------------------------------------ the SDK functions

def launch(task, cluster_name=None, retry_until_up=False, idle_minutes_to_autostop=None,
           wait_for=None, dryrun=False, down=False, fast=False, **kw):
    config = task.to_yaml_config()
    return _request("launch", {"cluster_name": cluster_name, "task": config,
                               "idle_minutes_to_autostop": idle_minutes_to_autostop,
                               "fast": fast, "dryrun": dryrun})


def status(cluster_names=None, refresh=None, all_users=False, *, _include_credentials=False,
           **kw):
    return _request("status", {"cluster_names": cluster_names,
                               "refresh": str(getattr(refresh, "value", refresh)),
                               "include_credentials": _include_credentials})


def stop(cluster_name, purge=False, **kw):
    return _request("stop", {"cluster_name": cluster_name})


def down(cluster_name, purge=False, **kw):
    return _request("down", {"cluster_name": cluster_name})


def autostop(cluster_name, idle_minutes, wait_for=None, down=False, **kw):
    return _request("autostop", {"cluster_name": cluster_name, "idle_minutes": idle_minutes,
                                 "down": down})


def stream_and_get(request_id=None, log_path=None, tail=None, follow=True, output_stream=None,
                   **kw):
    fn, args = load()["requests"][request_id]
    if output_stream is not None and fn in ("launch", "stop", "down"):
        name = args["cluster_name"]
        if fn == "launch":
            lines = [f"Considered resources (1 node): {args['task']['resources']}",
                     '<sky-payload>"<rich_update>[bold cyan]Launching[/] '
                     f'{name}</rich_update>"</sky-payload>',
                     f"\x1b[32m✓ Cluster launched: {name}.\x1b[0m"]
        else:
            lines = [f"{'Stopping' if fn == 'stop' else 'Terminating'} cluster {name}...done."]
        for line in lines:
            output_stream.write(line + "\n")
        output_stream.flush()
    return get(request_id)


def get(request_id):
    state = load()
    fn, args = state["requests"].pop(request_id)
    save(state)
    failure = state["fail"].get(fn)
    if failure:
        cls, message, history = (failure + [0])[:3]
        e = getattr(exceptions, cls)(message) if cls != "ValueError" else ValueError(message)
        if history:
            e.failover_history = [RuntimeError("capacity")] * history
        raise e
    return globals()[f"_do_{fn}"](args)


# ------------------------------------------------------------------ what the requests do

class Handle:
    """The fields of SkyPilot's CloudVmRayResourceHandle that rh reads."""

    def __init__(self, name: str, nodes: list[dict]):
        self.cluster_name = name
        self.stable_internal_external_ips = [(n.get("internal", n["host"]), n["host"])
                                             for n in nodes]
        self.stable_ssh_ports = [n["port"] for n in nodes]
        self.launched_nodes = len(nodes)

    @property
    def head_ip(self):
        return self.stable_internal_external_ips[0][1]

    @property
    def head_ssh_port(self):
        return self.stable_ssh_ports[0]


def _ssh(node: dict, command: str, check: bool = True) -> str:
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-i", node["key"], "-p", str(node["port"]), f"{node['user']}@{node['host']}",
            command]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise RuntimeError(f"stand-in ssh {command!r}: {proc.stderr}")
    return proc.stdout


def _start_job(node: dict, run: str) -> int:
    script = (f"export SKYPILOT_NODE_RANK=0; mkdir -p ~/sky_standin; "
              f"setsid nohup bash -c {shlex.quote(run)} > ~/sky_standin/job.log 2>&1 "
              f"< /dev/null & echo $!")
    return int(_ssh(node, script).split()[-1])


def _end_job(cluster: dict) -> None:
    pid = cluster.get("job_pid")
    if pid:
        _ssh(cluster["nodes"][0], f"kill {int(pid)} 2>/dev/null; true", check=False)
        cluster["job_pid"] = None


def _do_launch(args: dict):
    state = load()
    name, task = args["cluster_name"], args["task"]
    if args["dryrun"]:
        return None, None
    num = int(task.get("num_nodes") or 1)
    nodes = state["nodes"][:num]
    if len(nodes) < num:
        raise exceptions.ResourcesUnavailableError(
            f"stand-in has {len(state['nodes'])} host(s), the task asks for {num}")
    cluster = state["clusters"].get(name) or {}
    _end_job(cluster) if cluster else None
    resources = task.get("resources") or {}
    cluster.update({
        "name": name, "status": "UP", "nodes": nodes, "labels": resources.get("labels") or {},
        "autostop": -1 if args["idle_minutes_to_autostop"] is None
        else args["idle_minutes_to_autostop"],
        "launched_at": int(time.time()), "resources": resources,
        "launches": cluster.get("launches", 0) + 1,
    })
    if task.get("run"):
        cluster["job_pid"] = _start_job(nodes[0], task["run"])
    state["clusters"][name] = cluster
    save(state)
    return 1, Handle(name, nodes)


def _record(cluster: dict, credentials: bool) -> dict:
    nodes = cluster["nodes"]
    infra = str(cluster["resources"].get("infra") or "")
    rec = {
        "name": cluster["name"], "launched_at": cluster["launched_at"],
        "status": status_lib.ClusterStatus(cluster["status"]),
        "handle": Handle(cluster["name"], nodes) if cluster["status"] == "UP" else None,
        "autostop": cluster["autostop"], "to_down": False, "labels": cluster["labels"],
        "nodes": len(nodes), "cloud": infra.split("/")[0] or None,
        "region": (infra.split("/") + [None, None])[1] or None,
        "resources_str": f"{len(nodes)}x({cluster['resources']})",
    }
    if credentials and cluster["status"] == "UP":
        key = nodes[0]["key"]
        rec["credentials"] = {"ssh_user": nodes[0]["user"],
                              "ssh_private_key": "~/.sky/clients/standin/ssh/sky-key",
                              "ssh_private_key_content": Path(key).read_text(),
                              "ssh_control_name": cluster["name"],
                              "ssh_proxy_command": nodes[0].get("proxy_command")}
    return rec


def _do_status(args: dict):
    state = load()
    names = args["cluster_names"]
    credentials = args["include_credentials"] and not state.get("no_credentials")
    return [_record(c, credentials) for n, c in state["clusters"].items()
            if names is None or n in names]


def _known(state: dict, name: str) -> dict:
    if name not in state["clusters"]:
        raise exceptions.ClusterDoesNotExist(f"Cluster {name!r} does not exist.")
    return state["clusters"][name]


def _do_stop(args: dict):
    state = load()
    cluster = _known(state, args["cluster_name"])
    _end_job(cluster)
    cluster["status"] = "STOPPED"
    save(state)


def _do_down(args: dict):
    state = load()
    cluster = _known(state, args["cluster_name"])
    _end_job(cluster)
    del state["clusters"][args["cluster_name"]]
    save(state)


def _do_autostop(args: dict):
    state = load()
    cluster = _known(state, args["cluster_name"])
    if cluster["status"] != "UP":
        raise exceptions.ClusterNotUpError(f"Cluster {args['cluster_name']!r} is not up.",
                                           cluster_status=None)
    cluster["autostop"] = args["idle_minutes"]
    save(state)
