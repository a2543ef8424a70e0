"""The ``ondemand`` compute provider: nodes launched, stopped and torn down through SkyPilot's
SDK; rh brought up on them by rh-byo over the SSH details SkyPilot reports.

Steps of ``up()``: SkyPilot's record of the cluster (``sky.status``, with its SSH
credentials); when it is not UP, ``sky.launch`` (its log streamed into rh's progress display)
and the record again; the head's address, SSH port, user, key and proxy command from it; then
rh-byo's bring-up (probe, wheelhouse, virtualenv, Ray on several nodes, the server with
``--autostop-mins``). SkyPilot's job on the cluster is rh's watcher (see
:mod:`rh_skypilot.autostop`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rh_byo import ssh_config
from rh_byo.errors import SSHError
from rh_byo.provider import BYOProvider
from rh_byo.ray_nodes import RayNodes
from rh_byo.ssh import SSHNode

from rh_core.errors import ConfigError, ConnectionFailedError, RhError
from rh_core.names import resolve
from rh_core.paths import rh_home, write_private
from rh_core.plugin.interfaces import ComputeProvider, Endpoint
from rh_core.progress import Steps
from rh_skypilot import autostop, spec
from rh_skypilot.cluster import OnDemandCluster, ondemand_cluster
from rh_skypilot.errors import NotOursError, SkyPilotError, SSHDetailsMissing, explain
from rh_skypilot.sdk import LineStream, field, refresh_mode, sdk

UP, STOPPED, INIT = "UP", "STOPPED", "INIT"


def status_name(record: Any) -> str | None:
    """``UP``, ``INIT``, ``STOPPED`` (None for no record)."""
    if record is None:
        return None
    s = field(record, "status")
    return str(getattr(s, "value", s))


def _call(what: str, name: str, fn, *args, **kwargs):
    """``fn(...)``, with what SkyPilot raises said as rh's errors."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        err = explain(e, name, what)
        if err is e:
            raise
        raise err from None


class OnDemandProvider(BYOProvider):
    """Cloud VMs or Kubernetes pods through SkyPilot, brought up as byo nodes."""

    name = "ondemand"
    cluster_class = OnDemandCluster
    factory = staticmethod(ondemand_cluster)

    def __init__(self, cluster: OnDemandCluster):
        ComputeProvider.__init__(self, cluster)  # the head node is known once SkyPilot says
        self._node_cache: dict[str, SSHNode] = {}
        self._home: str | None = None
        self.ray = RayNodes(self)

    @property
    def node(self) -> SSHNode:
        """The head node, over the SSH details SkyPilot reported."""
        if not self.cluster.ips:
            raise ConnectionFailedError(f"cluster {self.cluster.short_name!r} has no nodes yet: "
                                        f"c.up() launches them")
        return self._node(self.cluster.ips[0])

    @property
    def sky(self):
        """The SkyPilot SDK (see :mod:`rh_skypilot.sdk`)."""
        return sdk()

    # ------------------------------------------------------------------ SkyPilot's record

    def record(self, refresh: bool = False) -> Any:
        """SkyPilot's status record of the cluster, with its SSH credentials; None when
        SkyPilot has no cluster of this name. ``refresh`` asks the cloud, not SkyPilot's table."""
        name = self.cluster.short_name
        records = _call("reading the status of", name, lambda: self.sky.get(self.sky.status(
            [name], refresh=refresh_mode(refresh), _include_credentials=True)))
        return next((r for r in records or [] if field(r, "name") == name), None)

    def made_by_rh(self, record: Any) -> bool:
        """Whether rh launched the SkyPilot cluster of ``record`` (its resources carry rh's
        label with this cluster's name)."""
        labels = field(record, "labels") or {}
        return labels.get(spec.LABEL) == self.cluster.short_name

    def _check_ours(self, record: Any) -> None:
        if record is None or self.made_by_rh(record) or self.cluster.take_over:
            return
        name = self.cluster.short_name
        raise NotOursError(
            f"SkyPilot already has a cluster named {name!r} (status {status_name(record)}) "
            f"that rh did not launch: rh leaves it alone. Choose another name, or pass "
            f"take_over=True to use it (rh then runs its server there, and c.down() tears the "
            f"cluster down)")

    def _use_record(self, record: Any) -> None:
        """Take the nodes' addresses and the SSH details from ``record``."""
        c, name = self.cluster, self.cluster.short_name
        handle = field(record, "handle")
        creds = field(record, "credentials") or {}
        pairs = getattr(handle, "stable_internal_external_ips", None) or []
        ports = getattr(handle, "stable_ssh_ports", None) or []
        head = pairs[0][1] if pairs else getattr(handle, "head_ip", None)
        user = creds.get("ssh_user")
        key = self._key_file(creds)
        missing = [what for what, value in (("the head node's address", head),
                                            ("the SSH user", user), ("the SSH key", key))
                   if not value]
        if missing:
            raise SSHDetailsMissing(
                f"SkyPilot reports cluster {name!r} as {status_name(record)} but its status "
                f"lacks {' and '.join(missing)}: run `sky status --refresh {name}`; if that "
                f"shows no IP, `sky launch -c {name}` repairs it (or c.down() then c.up())")
        ips = [external for _, external in pairs] or [head]
        internal = [inside for inside, _ in pairs] or None
        ssh_creds = {"ssh_user": user, "ssh_private_key": key,
                     "ssh_port": int(ports[0]) if ports else 22}
        if creds.get("ssh_proxy_command"):
            ssh_creds["ssh_proxy_command"] = creds["ssh_proxy_command"]
        if (ips, ssh_creds) != (c.ips, c.ssh_creds):
            for node in self._node_cache.values():
                node.close()
            self._node_cache.clear()
            self._home = None
        c.ips, c.ssh_creds = ips, ssh_creds
        c.internal_ips = internal if internal and internal != ips else None

    def _key_file(self, creds: dict) -> str | None:
        """The SSH key SkyPilot logs in with: its content (sent by SkyPilot's API server)
        written to a private file of rh's, or the path SkyPilot names when the content is not
        sent."""
        content = creds.get("ssh_private_key_content")
        if content:
            path = rh_home() / "clusters" / self.cluster.short_name / "sky-key"
            if not path.exists() or path.read_text() != content:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                write_private(path, content)
            return str(path)
        path = creds.get("ssh_private_key")
        return str(Path(path).expanduser()) if path and Path(path).expanduser().exists() else None

    def _forget_nodes(self) -> None:
        """The nodes are going: no addresses (in the saved config too), no SSH connections."""
        c = self.cluster
        ssh_config.remove_host(c.short_name)
        for node in self._node_cache.values():
            node.close()
        self._node_cache.clear()
        self._home = None
        had = c.ips is not None
        c.ips, c.internal_ips = None, None
        address = c._rns_address
        if had and address and not address.startswith("^") and resolve.exists(address):
            c.save()

    # ------------------------------------------------------------------ bring-up

    def server_args(self) -> list[str]:
        """rh's idle rule: the server stops itself after the cluster's autostop minutes."""
        mins = self.cluster.autostop
        return ["--autostop-mins", f"{mins:g}"] if mins > 0 else []

    def launch(self, steps: Steps, record: Any = None, fast: bool = False) -> Any:
        """``sky.launch`` of the cluster's task (its log shown as the step's lines); returns
        SkyPilot's record of the cluster, UP."""
        c, name = self.cluster, self.cluster.short_name
        task = spec.to_task(c, run=autostop.watcher_script(self.cluster_dir))
        idle = autostop.SKY_IDLE_MINUTES if c.autostop > 0 else None
        verb = ("submitting rh's watcher job" if fast else
                "starting the stopped nodes" if status_name(record) == STOPPED else
                f"launching {c.num_nodes} node(s)")
        with steps.step(f"{verb} through SkyPilot ({c.instance_type or 'default'} on "
                        f"{c.cloud or 'cheapest'})") as s:
            stream = LineStream(s["show"])
            try:
                _call("launching", name, lambda: self.sky.stream_and_get(
                    self.sky.launch(task, cluster_name=name, idle_minutes_to_autostop=idle,
                                    fast=fast),
                    output_stream=stream))
            except RhError as e:
                if stream.lines:  # what SkyPilot was doing when it gave up
                    e.args = (f"{e}\nSkyPilot's last lines:\n  " + "\n  ".join(stream.lines[-8:]),)
                raise
        with steps.step("reading the cluster's SSH details from SkyPilot"):
            record = self.record()
        if status_name(record) != UP:
            raise SkyPilotError(
                f"SkyPilot launched {name!r} but reports it {status_name(record) or 'gone'}: "
                f"see `sky status {name}` and `sky logs --provision {name}`")
        return record

    def up(self) -> Endpoint:
        """Launch (or start) the nodes unless SkyPilot has them UP, then bring rh up on them
        with rh-byo; the cluster's config is saved (so ``rh status NAME`` finds it)."""
        c, name = self.cluster, self.cluster.short_name
        if c.dryrun:
            raise ConfigError(f"cluster {name!r} was made with dryrun=True: it launches nothing. "
                              f"Make it without dryrun to bring it up")
        spec.to_task(c)  # a bad cloud, region or instance type fails before SkyPilot is asked
        steps = Steps(name)
        with steps.step("asking SkyPilot for the cluster's status"):
            record = self.record()
        self._check_ours(record)
        launched = status_name(record) != UP
        if launched:
            record = self.launch(steps, record)
        self._use_record(record)
        if not launched and c.autostop > 0 and not self.watcher_running():
            # The server stopped for idleness and its watcher with it: SkyPilot would stop the
            # nodes under a new server. A new watcher job first.
            record = self.launch(steps, record, fast=True)
            self._use_record(record)
        self._apply_autostop(record)
        self._save()
        return BYOProvider.up(self)

    def watcher_running(self) -> bool:
        """Whether rh's watcher job runs on the head node."""
        out = self.node.run(autostop.watcher_running_command(self.cluster_dir), check=False)
        return out.stdout.strip().endswith("yes")

    def _apply_autostop(self, record: Any) -> None:
        """SkyPilot's autostop as the cluster wants it, when its record says otherwise."""
        wanted = autostop.SKY_IDLE_MINUTES if self.cluster.autostop > 0 else -1
        have = field(record, "autostop")
        if have is None or (have < 0 and wanted < 0) or have == wanted:
            return
        name = self.cluster.short_name
        _call("setting the autostop of", name,
              lambda: self.sky.get(self.sky.autostop(name, wanted)))

    def _save(self) -> None:
        """Save the config where it was saved (``~/NAME`` for a builtin ``^`` one)."""
        c = self.cluster
        address = c._rns_address
        if address and not address.startswith("^"):
            c.save()
        else:
            c.save(f"~/{c.short_name}")

    def endpoint(self) -> Endpoint | None:
        """The running server's endpoint, from the addresses SkyPilot gave last (None when the
        cluster has none or its head does not answer)."""
        if not self.cluster.ips:
            return None
        return BYOProvider.endpoint(self)

    def sync_code(self, local_root: str) -> str:
        """The code root to every node (rh-byo's sync), the cluster brought up first: its nodes
        are known once SkyPilot has launched them."""
        self.cluster.client()
        return BYOProvider.sync_code(self, local_root)

    def copy_to(self, local_path: str, remote_path: str, folder: bool) -> bool:
        self.cluster.client()
        return BYOProvider.copy_to(self, local_path, remote_path, folder)

    def copy_from(self, remote_path: str, local_path: str, folder: bool) -> bool:
        self.cluster.client()
        return BYOProvider.copy_from(self, remote_path, local_path, folder)

    # ------------------------------------------------------------------ stop, down

    def stop(self) -> None:
        """``sky.stop``: the nodes stop, their disks stay; ``up()`` starts them again."""
        name = self.cluster.short_name
        record = self.record()
        if record is None:
            raise SkyPilotError(f"SkyPilot has no cluster named {name!r} to stop (never "
                                f"launched, or torn down): c.up() launches it")
        self._check_ours(record)
        cloud = str(field(record, "cloud") or "").lower()
        if self.cluster.spot and cloud != "gcp":  # GCP alone keeps a stopped spot VM's disk
            raise SkyPilotError(f"cluster {name!r} runs on spot instances, which SkyPilot "
                                f"cannot stop on {cloud or 'its cloud'} (only terminate): use "
                                f"c.down()")
        self._stop_server(record)
        with Steps(name).step("stopping the nodes through SkyPilot") as s:
            _call("stopping", name, lambda: self.sky.stream_and_get(
                self.sky.stop(name), output_stream=LineStream(s["show"])))
        self._forget_nodes()

    def down(self) -> None:
        """``sky.down``: the nodes are terminated. Nothing to do (and no error) when SkyPilot
        has no such cluster."""
        from sky import exceptions  # SkyPilot takes seconds to import: only when it is called

        name = self.cluster.short_name
        record = self.record()
        if record is None:
            self._forget_nodes()
            return
        self._check_ours(record)
        self._stop_server(record)
        with Steps(name).step("tearing the nodes down through SkyPilot") as s:
            try:
                self.sky.stream_and_get(self.sky.down(name), output_stream=LineStream(s["show"]))
            except exceptions.ClusterDoesNotExist:
                pass  # gone meanwhile: what down wanted
            except Exception as e:
                err = explain(e, name, "tearing down")
                if err is e:
                    raise
                raise err from None

    def _stop_server(self, record: Any) -> None:
        """Stop rh's server (and Ray) cleanly before SkyPilot stops or terminates the nodes;
        a node that does not answer is left to SkyPilot."""
        if status_name(record) == UP and field(record, "handle") is not None:
            try:
                self._use_record(record)
                BYOProvider.down(self)
            except (SSHError, ConnectionFailedError):
                pass
        self._forget_nodes()

    def keep_warm(self, mins: int) -> None:
        """New autostop minutes: SkyPilot's part at once; the server's idle rule with its next
        start (``c.restart_server()`` applies it now)."""
        c = self.cluster
        c.autostop_mins = mins
        record = self.record()
        if status_name(record) == UP:
            self._check_ours(record)
            self._apply_autostop(record)

    # ------------------------------------------------------------------ status

    def status(self, refresh: bool = False) -> dict[str, Any]:
        """SkyPilot's record (``"skypilot"``) and, when the server answers, its status."""
        c, name = self.cluster, self.cluster.short_name
        record = self.record(refresh)
        if record is None:
            return {"name": name, "skypilot": {
                "status": None,
                "message": f"SkyPilot has no cluster named {name!r}: it was never launched, was "
                           f"torn down, or was removed outside rh (c.up() launches it)"}}
        out: dict[str, Any] = {"name": name, "skypilot": summary(record, self.made_by_rh(record))}
        if status_name(record) == UP:
            self._use_record(record)
            if self.endpoint() is not None:
                out.update(c.client().status())
        return out

    @classmethod
    def list_status(cls, names: list[str]) -> dict[str, str]:
        """SkyPilot's status of each of the clusters ``names`` (``rh clusters``); a name
        SkyPilot does not know is left out."""
        sky = sdk()
        records = _call("listing", ", ".join(names), lambda: sky.get(sky.status(names)))
        return {field(r, "name"): status_name(r) for r in records or []}


def summary(record: Any, made_by_rh: bool) -> dict[str, Any]:
    """What ``c.status()`` shows of SkyPilot's record."""
    return {"status": status_name(record), "cloud": field(record, "cloud"),
            "region": field(record, "region"), "nodes": field(record, "nodes"),
            "resources": field(record, "resources_str"), "autostop": field(record, "autostop"),
            "to_down": field(record, "to_down"), "launched_at": field(record, "launched_at"),
            "made_by_rh": made_by_rh}
