"""How an on-demand cluster stops itself when idle: rh's server decides, SkyPilot stops.

SkyPilot's skylet (on the head node) checks once a minute whether the cluster is idle: no job
pending or running in SkyPilot's job queue (and, with the default ``wait_for``
``jobs_and_ssh``, no SSH session holding a terminal). After ``idle_minutes`` of that it stops
or tears down the cluster. rh's calls are not SkyPilot jobs, so on its own SkyPilot would stop
a cluster busy with rh calls.

So the cluster's SkyPilot job is rh's watcher (:func:`watcher_script`, the task's ``run``): on
the head node it waits for rh's server to start, then runs as long as the server runs. The
server runs with ``--autostop-mins N`` and exits after N minutes with no call running and
none started; the watcher ends with it (after a grace period that covers a restart of the
server), the job queue empties, and SkyPilot's autostop, set to :data:`SKY_IDLE_MINUTES`,
stops the cluster a minute or two later. A cluster answering rh calls is never idle for
SkyPilot; an idle one stops about N + 2 minutes after its last call. rh's SSH tunnel holds no
terminal, so it does not keep the cluster up; an interactive ``c.ssh()`` session does.
"""

from __future__ import annotations

#: SkyPilot's idle minutes once rh's server has stopped for idleness (it has waited already).
SKY_IDLE_MINUTES = 1
#: How long the watcher waits for the first server to start (a launch's bring-up).
FIRST_WAIT_S = 1200
#: How long the watcher waits for a new server after one stopped (a restart, a new version).
GRACE_S = 120


def watcher_script(cluster_dir: str, first_wait: int | None = None, grace: int | None = None,
                   period: int = 5) -> str:
    """The shell script of the cluster's SkyPilot job. On the head node (SkyPilot's node rank
    0; the other nodes' part ends at once) it records its PID in ``watcher.pid``, waits up to
    ``first_wait`` seconds for the server's record (``server.json``), then checks every
    ``period`` seconds that the recorded server's PID lives; once a server has run (seen alive,
    or its record or its output ``server.out``, which rh-byo's start writes, newer than the
    watcher: a server that stopped by itself between two checks has removed its record), when
    none has lived for ``grace`` seconds it exits 0 (defaults: :data:`FIRST_WAIT_S`,
    :data:`GRACE_S`)."""
    first_wait = FIRST_WAIT_S if first_wait is None else first_wait
    grace = GRACE_S if grace is None else grace
    d = cluster_dir.replace("~", "$HOME", 1) if cluster_dir.startswith("~") else cluster_dir
    return f"""\
if [ "${{SKYPILOT_NODE_RANK:-0}}" != "0" ]; then exit 0; fi
mkdir -p {d}
echo $$ > {d}/watcher.pid
waited=0
limit={first_wait}
while true; do
  pid=$(sed -n 's/.*"pid": *\\([0-9][0-9]*\\).*/\\1/p' {d}/server.json 2>/dev/null | head -n 1)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    waited=0
    limit={grace}
  else
    # A server started since the watcher did (its record, or its output file, which a
    # server that stopped by itself leaves behind with no record) ran and is gone.
    if [ {d}/server.json -nt {d}/watcher.pid ] || [ {d}/server.out -nt {d}/watcher.pid ]; then
      limit={grace}
    fi
    waited=$((waited + {period}))
    if [ "$waited" -ge "$limit" ]; then
      echo "rh: no rh server on this node for $waited s: the cluster is idle for SkyPilot now"
      rm -f {d}/watcher.pid
      exit 0
    fi
  fi
  sleep {period}
done
"""


def watcher_running_command(cluster_dir: str) -> str:
    """A command that prints ``yes`` when the watcher of :func:`watcher_script` runs."""
    d = cluster_dir.replace("~", "$HOME", 1) if cluster_dir.startswith("~") else cluster_dir
    return (f"p=$(cat {d}/watcher.pid 2>/dev/null); "
            f"if [ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null; then echo yes; else echo no; fi")
