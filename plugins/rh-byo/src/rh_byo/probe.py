"""The probe of a node: one SSH command that tells what bring-up needs to know (python3 and
rsync there, the rh installed, whether the cluster's server and Ray run)."""

from __future__ import annotations

import json

from rh_core.errors import ConfigError

#: Run by the node's login shell; ``{name}`` is the cluster's short name. Every answer is a
#: line ``RH_<KEY> value``.
PROBE = r"""
command -v python3 >/dev/null 2>&1 || { echo "RH_NO_PYTHON"; exit 0; }
echo "RH_HOME_DIR $HOME"
command -v rsync >/dev/null 2>&1 && echo "RH_RSYNC yes"
echo "RH_PYTHON $(python3 -c 'import sys; print(sys.version.split()[0])')"
cat ~/.rh/venv/.rh-wheelhouse 2>/dev/null | sed 's/^/RH_WHEELHOUSE /'
echo
rec=~/.rh/clusters/{name}/server.json
if [ -f "$rec" ]; then
  echo "RH_RECORD $(cat "$rec")"
  pid=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['pid'])" "$rec")
  kill -0 "$pid" 2>/dev/null && echo "RH_ALIVE $pid"
fi
rp=~/.rh/clusters/{name}/ray.pid
if [ -f "$rp" ]; then
  sid=$(cat "$rp")
  ps -s "$sid" -o args= 2>/dev/null | grep -q raylet && echo "RH_RAY $sid"
fi
true
"""


def probe(node, cluster_name: str) -> dict:
    """What ``node`` has, as a dict: ``home_dir``, ``rsync`` ("yes"), ``python`` (version),
    ``wheelhouse`` (the key of the installed rh), ``record`` (the server's record), ``alive``
    (the server's PID when it runs), ``ray`` (the session of a running Ray). Also tells
    ``node`` whether it has rsync; raises when it has no python3."""
    out = node.run(PROBE.replace("{name}", cluster_name)).stdout
    if "RH_NO_PYTHON" in out:
        raise ConfigError(
            f"no python3 on {node.target}: looked for `python3` on the login shell's "
            f"PATH. Install Python 3 there (e.g. apt-get install python3).")
    info: dict = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key.startswith("RH_"):
            info[key[3:].lower()] = value.strip()
    node.remote_rsync = info.get("rsync") == "yes"  # else uploads go over sftp
    if info.get("record"):
        info["record"] = json.loads(info["record"])
    return info
