"""The errors rh-skypilot raises on purpose, and :func:`explain`, which turns what SkyPilot
raises into what went wrong and what to do about it."""

from __future__ import annotations

import re

from rh_core.errors import ConfigError, ConnectionFailedError, RhError


class SkyPilotError(RhError):
    """SkyPilot refused or failed a request; the message carries SkyPilot's reason."""


class NoCloudError(SkyPilotError):
    """No cloud SkyPilot can use is enabled on this machine (``sky check`` says which)."""


class CapacityError(SkyPilotError):
    """No region or zone had the instances: out of capacity, or over a quota."""


class NotOursError(ConfigError):
    """A SkyPilot cluster of this name exists that rh did not launch."""


class SSHDetailsMissing(ConnectionFailedError):
    """SkyPilot reports the cluster up but not how to log in to it."""


def reason(e: BaseException) -> str:
    """SkyPilot's own words, without colours, on a few lines."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip() or type(e).__name__
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(lines[:12])


def explain(e: BaseException, cluster: str, doing: str) -> BaseException:
    """The rh error for an exception SkyPilot raised while ``doing`` (e.g. "launching") the
    cluster ``cluster``; the exception itself when it is not SkyPilot's."""
    from sky import exceptions as sx  # SkyPilot's exceptions: the stand-in raises them too

    if isinstance(e, RhError):
        return e
    why = reason(e)
    if isinstance(e, sx.NoCloudAccessError):
        return NoCloudError(
            f"{doing} {cluster!r}: no cloud is enabled for SkyPilot on this machine ({why}). "
            f"Run `sky check` to see which clouds it can use and what each lacks (credentials "
            f"for AWS, GCP, Azure; a kubeconfig for Kubernetes), then try again")
    if isinstance(e, sx.ResourcesUnavailableError):
        history = getattr(e, "failover_history", None) or []
        if not history:  # the optimizer found nothing that fits, before trying any region
            return ConfigError(
                f"{doing} {cluster!r}: no enabled cloud offers these resources ({why}). Check "
                f"instance_type= and provider= (`sky show-gpus` lists accelerators and the "
                f"clouds that have them; `sky check` shows the enabled clouds)")
        return CapacityError(
            f"{doing} {cluster!r}: every region SkyPilot tried refused the instances (out of "
            f"capacity or over a quota): {why}\nTry another region= or provider=, "
            f"use_spot=False, or ask the cloud for more quota")
    if isinstance(e, sx.InvalidClusterNameError):
        return ConfigError(f"{doing} {cluster!r}: SkyPilot refuses the name ({why}): choose "
                           f"another name")
    if isinstance(e, (sx.ClusterOwnerIdentityMismatchError,)):
        return NotOursError(f"{doing} {cluster!r}: the SkyPilot cluster of this name belongs to "
                            f"another cloud identity ({why}): choose another name")
    if isinstance(e, sx.NotSupportedError):
        hint = ": use c.down() to terminate it instead" if doing == "stopping" else ""
        return SkyPilotError(f"{doing} {cluster!r}: SkyPilot does not support this ({why}){hint}")
    if isinstance(e, sx.ResourcesMismatchError):
        return ConfigError(
            f"{doing} {cluster!r}: SkyPilot's cluster of this name has other resources than "
            f"the ones asked for ({why}). Bring it down first (c.down()) to launch it anew, or "
            f"ask for what it has")
    if isinstance(e, ValueError):  # SkyPilot's word on a cloud, region, zone or type it lacks
        return ConfigError(f"{doing} {cluster!r}: SkyPilot refuses the request: {why}. Check "
                           f"provider=, region=, zone= and instance_type= (`sky check` lists "
                           f"the enabled clouds)")
    if type(e).__module__.startswith("sky"):
        return SkyPilotError(f"{doing} {cluster!r} failed in SkyPilot: {why}")
    return e
