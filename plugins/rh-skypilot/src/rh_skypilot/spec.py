"""What SkyPilot is asked for: an on-demand cluster's fields as the keyword arguments of
``sky.Resources`` (and the ``sky.Task`` around them), through one table.

:data:`INSTANCE_FORMS` reads the ``instance_type`` string in SkyPilot's forms (``CPU:4+``,
``A10G:1``, ``m5.xlarge``); :data:`FIELDS` says, one row per field of the cluster, which
argument of ``sky.Resources`` it becomes. :func:`resources_kwargs` is the table applied, plain
data that a test reads field by field; :func:`to_resources` and :func:`to_task` build SkyPilot's
own objects from it (offline: SkyPilot checks an instance type of a named cloud against its
catalog, which it downloads when missing). Only current ``sky.Resources`` arguments are used:
``infra=`` (not the deprecated ``cloud=``, ``region=``, ``zone=``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable

from rh_core.errors import ConfigError

if TYPE_CHECKING:
    from rh_skypilot.cluster import OnDemandCluster

#: The label every cluster rh launches carries (its value: the rh cluster's name), so rh knows
#: the SkyPilot clusters it made from those it did not.
LABEL = "rh-cluster"

#: ``provider=`` values that leave the choice of cloud to SkyPilot's optimizer.
ANY_CLOUD = (None, "", "cheapest", "any")

#: The forms of ``instance_type``, tried in order: (form, pattern, Resources arguments).
INSTANCE_FORMS: list[tuple[str, re.Pattern, Callable[[re.Match], dict[str, Any]]]] = [
    # "CPU:4" exactly 4 vCPUs, "CPU:4+" at least 4 (SkyPilot's cpus="4+").
    ("cpus", re.compile(r"CPU:(\d+(?:\.\d+)?\+?)", re.IGNORECASE),
     lambda m: {"cpus": m.group(1)}),
    # "A10G:1", "A100:4", "tpu-v2-8:1": an accelerator and how many.
    ("accelerators", re.compile(r"([A-Za-z][A-Za-z0-9_.-]*):(\d+(?:\.\d+)?)"),
     lambda m: {"accelerators": f"{m.group(1)}:{m.group(2)}"}),
    # "m5.xlarge", "n1-standard-8", "Standard_NC6s_v3": a cloud's own instance type.
    ("instance_type", re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*"),
     lambda m: {"instance_type": m.group(0)}),
]


def instance_kwargs(instance_type: str | None) -> dict[str, Any]:
    """``instance_type`` as ``sky.Resources`` arguments (see :data:`INSTANCE_FORMS`)."""
    if instance_type is None:
        return {}
    text = str(instance_type).strip()
    for _, pattern, make in INSTANCE_FORMS:
        m = pattern.fullmatch(text)
        if m:
            return make(m)
    raise ConfigError(
        f"instance_type={instance_type!r} is not a form SkyPilot reads: give an instance type "
        f"('m5.xlarge'), an accelerator and its count ('A10G:1', 'A100:4'), or CPUs ('CPU:4', "
        f"'CPU:4+' for at least 4)")


def infra(cloud: str | None, region: str | None, zone: str | None) -> str | None:
    """SkyPilot's ``infra`` string: ``cloud[/region[/zone]]``; ``*`` for any cloud in a named
    region; None when nothing is pinned."""
    cloud = None if cloud in ANY_CLOUD else str(cloud).lower()
    if zone and not region:
        raise ConfigError(f"zone={zone!r} needs its region too: give region= as well")
    if cloud == "kubernetes":
        cloud = "k8s"
    if not (cloud or region):
        return None
    return "/".join(p for p in (cloud or "*", region, zone) if p)


def _ports(ports) -> list[str] | None:
    if not ports:
        return None
    out = []
    for p in ports:
        text = str(p)
        if not re.fullmatch(r"\d+(-\d+)?", text):
            raise ConfigError(f"open_ports takes ports and ranges such as 443 or '8000-8010', "
                              f"got {p!r}")
        out.append(text)
    return out


#: One row per field of the cluster: (field(s), ``sky.Resources`` argument, value from the
#: cluster). A value of None leaves the argument out (SkyPilot's default).
FIELDS: list[tuple[str, str, Callable[[OnDemandCluster], Any]]] = [
    ("provider, region, zone", "infra", lambda c: infra(c.cloud, c.region, c.zone)),
    ("use_spot", "use_spot", lambda c: c.spot),
    ("image_id", "image_id", lambda c: c.image_id),
    ("disk_size", "disk_size", lambda c: c.disk_size),
    ("memory", "memory", lambda c: None if c.memory is None else str(c.memory)),
    ("open_ports (and a direct server's port)", "ports", lambda c: _ports(c.ports_to_open())),
    ("name", "labels", lambda c: {LABEL: c.short_name}),
]


def resources_kwargs(cluster: OnDemandCluster) -> dict[str, Any]:
    """The keyword arguments of ``sky.Resources`` for ``cluster``: :data:`INSTANCE_FORMS` for its
    ``instance_type``, then every row of :data:`FIELDS` whose value is not None."""
    kwargs = instance_kwargs(cluster.instance_type)
    for _, argument, value in FIELDS:
        v = value(cluster)
        if v is not None:
            kwargs[argument] = v
    return kwargs


def to_resources(cluster: OnDemandCluster):
    """``sky.Resources`` for ``cluster``; SkyPilot's refusal (an unknown cloud, region or
    accelerator) as a ConfigError that says what to change."""
    import sky  # SkyPilot takes seconds to import: only when a cluster is launched or planned

    kwargs = resources_kwargs(cluster)
    try:
        return sky.Resources(**kwargs)
    except (ValueError, sky.exceptions.ResourcesUnavailableError) as e:
        raise ConfigError(f"SkyPilot cannot make resources of cluster {cluster.short_name!r} "
                          f"from {kwargs}: {_first_line(e)}. Check provider=, region=, zone= "
                          f"and instance_type= (`sky show-gpus` lists accelerators; `sky check` "
                          f"the clouds you can use)") from None


def to_task(cluster: OnDemandCluster, run: str | None = None):
    """``sky.Task`` for ``cluster``, made from its YAML form (SkyPilot's public task schema):
    the nodes, the resources of :func:`resources_kwargs`, ``vpc_name`` as the cloud's
    ``config:`` entry, and the command SkyPilot runs as the cluster's job (rh's watcher, see
    :mod:`rh_skypilot.autostop`)."""
    import sky  # see to_resources

    to_resources(cluster)  # SkyPilot's refusals, said as rh says them
    config: dict[str, Any] = {"name": f"rh-{cluster.short_name}", "num_nodes": cluster.num_nodes,
                              "resources": resources_kwargs(cluster)}
    if run:
        config["run"] = run
    if cluster.vpc_name:
        config["config"] = {vpc_cloud(cluster.cloud): {"vpc_name": cluster.vpc_name}}
    try:
        return sky.Task.from_yaml_config(config)
    except ValueError as e:
        raise ConfigError(f"SkyPilot refuses the task of cluster {cluster.short_name!r}: "
                          f"{_first_line(e)}") from None


def vpc_cloud(cloud: str | None) -> str:
    """The cloud whose ``vpc_name`` setting a cluster's ``vpc_name`` is (AWS and GCP have one)."""
    if cloud not in ("aws", "gcp"):
        raise ConfigError(f"vpc_name= needs provider='aws' or provider='gcp' (the clouds where "
                          f"SkyPilot places a cluster in a named VPC), got provider={cloud!r}")
    return cloud


def _first_line(e: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    return text.splitlines()[0] if text else type(e).__name__
