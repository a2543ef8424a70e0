"""The record of an on-demand cluster, its checks, and ``rh.ondemand_cluster``."""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

import attrs
from rh_byo.cluster import BYOCluster

from rh_core import user_config
from rh_core.errors import ConfigError, ConnectionFailedError
from rh_core.names import resolve
from rh_core.resources.base import load

#: A name SkyPilot takes for a cluster (and clouds for the instances named after it).
NAME_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
MAX_NAME = 40
#: Connection types an on-demand cluster can use.
CONNECTIONS = ("ssh", "tls", "none")
#: The server's port on a node clients reach directly (tls, none): opened with the cluster's
#: ports. 80 and 443 need Caddy in front, which byo nodes do not have yet.
DIRECT_PORT = 32300


def _nodes(inst, attr, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"num_nodes must be a whole number of 1 or more, got {value!r}")


def _autostop(inst, attr, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                              or (value <= 0 and value != -1)):
        raise ConfigError(f"autostop_mins is minutes of idleness (above 0), -1 for never, or "
                          f"None for the config's default_autostop; got {value!r}")


def _disk(inst, attr, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"disk_size is the boot disk's size in GB (a whole number), got "
                          f"{value!r}")


def _connection(inst, attr, value):
    if value not in CONNECTIONS:
        raise ConfigError(f"server_connection_type of an on-demand cluster is one of "
                          f"{list(CONNECTIONS)}, got {value!r}")


@attrs.define(kw_only=True, slots=False)
class OnDemandCluster(BYOCluster):
    """Cloud VMs (or Kubernetes pods) that SkyPilot launches; rh is brought up on them over
    SSH as on a bring-your-own cluster. ``ips`` and ``ssh_creds`` come from SkyPilot."""

    subtype: ClassVar[str] = "ondemand"

    server_connection_type: str = attrs.field(default="ssh", validator=_connection)
    #: "A10G:1", "CPU:4+", "m5.xlarge" (see ``rh_skypilot.spec.INSTANCE_FORMS``); None: SkyPilot's
    #: default CPU instance of the cloud it picks.
    instance_type: str | None = None
    #: The cloud: "aws", "gcp", "azure", "kubernetes", any cloud SkyPilot knows, or "cheapest"
    #: (SkyPilot's optimizer picks among the enabled ones). ``provider=`` of the factories.
    cloud: str | None = "cheapest"
    region: str | None = None
    zone: str | None = None
    num_nodes: int = attrs.field(default=1, validator=_nodes)
    #: Spot instances; None: the config's ``use_spot``.
    use_spot: bool | None = None
    #: An image of the cloud (an AMI id, "projects/.../images/...", "docker:<image>").
    image_id: str | None = None
    #: The boot disk, in GB.
    disk_size: int | None = attrs.field(default=None, validator=_disk)
    #: Memory in GB: "32", "32+" (at least).
    memory: str | None = attrs.field(default=None, converter=lambda v: None if v is None
                                     else str(v))
    #: Ports open to the internet (firewall rules, security groups).
    open_ports: list = attrs.field(factory=list, converter=lambda v: list(v or []))
    #: Minutes without a call before the cluster stops (-1: never; None: the config's
    #: ``default_autostop``); see docs/clusters/ondemand.md for how rh and SkyPilot share it.
    autostop_mins: float | None = attrs.field(default=None, validator=_autostop)
    #: The VPC to launch in (AWS and GCP).
    vpc_name: str | None = None
    #: Take over a SkyPilot cluster of this name that rh did not launch (default: refuse).
    take_over: bool = False
    #: Built with ``dryrun=True``: nothing is launched (``up()`` says so).
    dryrun: bool = attrs.field(default=False, metadata={"config": False})

    def __attrs_post_init__(self):
        name = self.short_name
        if not name:
            raise ConfigError("an on-demand cluster needs a name (the SkyPilot cluster's): "
                              "rh.ondemand_cluster(name='a10', instance_type='A10G:1')")
        if len(name) > MAX_NAME or not NAME_RE.fullmatch(name):
            raise ConfigError(
                f"the cluster name {name!r} cannot name a SkyPilot cluster: use lowercase "
                f"letters, digits and '-', starting with a letter and ending with a letter or "
                f"digit, at most {MAX_NAME} characters (e.g. 'rh-a10')")
        if self.cloud is not None:
            self.cloud = str(self.cloud).lower()
        if self.image_id and str(self.image_id).startswith("docker:"):
            raise ConfigError(f"image_id={self.image_id!r}: container images are not supported "
                              f"yet (SkyPilot runs the task inside the container, which rh's "
                              f"SSH login does not reach); give a VM image, or install what you "
                              f"need with rh.env(reqs=[...])")
        if self.server_connection_type != "ssh" and self.server_port is None:
            self.server_port = DIRECT_PORT
        # The translation checks its own fields: a bad instance_type or port fails here, at
        # construction, not at launch (spec imports this module for its types: imported here).
        from rh_skypilot import spec

        spec.instance_kwargs(self.instance_type)
        spec.infra(self.cloud, self.region, self.zone)
        spec.resources_kwargs(self)

    @property
    def spot(self) -> bool:
        """Whether spot instances are asked for (``use_spot``, else the config's)."""
        return bool(user_config.value("use_spot") if self.use_spot is None else self.use_spot)

    @property
    def autostop(self) -> float:
        """Minutes of idleness before the cluster stops, -1 for never (``autostop_mins``, else
        the config's ``default_autostop``)."""
        return user_config.value("default_autostop") if self.autostop_mins is None else self.autostop_mins

    def ports_to_open(self) -> list:
        """``open_ports``, and the server's port when clients reach it directly."""
        ports = list(self.open_ports)
        if self.server_connection_type != "ssh" and self.server_port not in ports and str(
                self.server_port) not in [str(p) for p in ports]:
            ports.append(self.server_port)
        return ports

    # ------------------------------------------------------------------ what users call

    def client(self):
        """The server's client. With autostop on, a client unused for the autostop minutes
        first asks the server's /health (which does not count as work): the server may have
        stopped for idleness meanwhile, and through an SSH tunnel a stopped server looks like a
        dropped connection, not a refused one. Then the cluster is brought up again."""
        rt = self._runtime()
        now, last, mins = time.monotonic(), rt.get("last_use"), self.autostop
        if "client" in rt and mins > 0 and last is not None and now - last >= mins * 60 * 0.9:
            try:
                rt["client"].health()
            except ConnectionFailedError:
                self._forget_client()
        rt["last_use"] = now
        return super().client()

    def up(self) -> OnDemandCluster:
        """Launch the nodes when SkyPilot does not have them up, then bring rh up on them."""
        return self.up_if_not()

    def stop(self) -> None:
        """Stop the nodes (their disks stay; ``up()`` starts them again)."""
        self._forget_client()
        self.provider.stop()

    def status(self, refresh: bool = False) -> dict[str, Any]:
        """SkyPilot's record of the cluster under ``"skypilot"`` (``refresh=True`` asks the
        cloud), and the server's status when it answers."""
        return self.provider.status(refresh=refresh)

    def teardown_and_delete(self) -> None:
        """Terminate the nodes and delete the saved config."""
        self.down()
        self.delete_configs()

    def ssh(self, command: str | None = None) -> int:
        """An interactive shell on the head node (or one command); launches the cluster
        first when it has no nodes yet."""
        if not self.ips:
            self.up_if_not()
        return super().ssh(command)

    def endpoint(self) -> str | None:
        """The URL the cluster's server answers at from this machine (through the SSH tunnel
        for ``ssh``); None when it is not up."""
        if not self.is_up():
            return None
        return self.client().info.base_url


def ondemand_cluster(name: str | None = None, instance_type: str | None = None,
                     provider: str | None = None, region: str | None = None,
                     zone: str | None = None, num_nodes: int = 1, use_spot: bool | None = None,
                     image_id: str | None = None, disk_size: int | None = None,
                     memory: str | int | None = None, open_ports: list | None = None,
                     autostop_mins: int | None = None, vpc_name: str | None = None,
                     server_connection_type: str = "ssh", den_auth: bool = False,
                     take_over: bool = False, dryrun: bool = False,
                     **fields: Any) -> OnDemandCluster:
    """An on-demand cluster SkyPilot launches (``rh.ondemand_cluster``).

    ``provider`` names the cloud ("aws", "gcp", "azure", "kubernetes", "cheapest"; default: the
    config's ``default_provider`` when it is a cloud, else "cheapest"). Nothing is launched
    until the cluster is used (``c.up()``, or ``rh.function(fn).to(c)``); ``dryrun=True``
    builds the object only. See ``docs/clusters/ondemand.md`` for every argument.
    """
    if name is not None and instance_type is None and provider is None and not fields and \
            _saved(name):
        loaded = load(name)
        if not isinstance(loaded, OnDemandCluster):
            raise ConfigError(f"{name!r} is a {loaded.subtype or loaded.resource_type} cluster, "
                              f"not an on-demand one")
        loaded.dryrun = dryrun
        return loaded
    if provider is None:
        default = user_config.value("default_provider")
        provider = "cheapest" if default in ("local", "byo", "ondemand") else default
    if "ips" in fields and fields["ips"]:
        raise ConfigError("an on-demand cluster gets its addresses from SkyPilot: leave out ips= "
                          "(rh.cluster(ips=[...]) makes a bring-your-own cluster)")
    fields.pop("ips", None)
    try:
        return OnDemandCluster(
            name=name, instance_type=instance_type, cloud=provider, region=region, zone=zone,
            num_nodes=num_nodes, use_spot=use_spot, image_id=image_id, disk_size=disk_size,
            memory=memory, open_ports=open_ports, autostop_mins=autostop_mins,
            vpc_name=vpc_name, server_connection_type=server_connection_type,
            den_auth=den_auth, take_over=take_over, dryrun=dryrun, **fields)
    except TypeError as e:
        known = sorted(f.name for f in attrs.fields(OnDemandCluster) if not f.name.startswith("_"))
        raise ConfigError(f"bad argument for an on-demand cluster ({e}); known: {known}") from None


def _saved(name: str) -> bool:
    return resolve.exists(name)
