"""Functions the kubernetes tests send into pods (importable, so they travel by module path)."""

from __future__ import annotations

import os
import time


def chatter(n):
    for i in range(n):
        print(f"pod line {i}", flush=True)
    return n


def double(array):
    return array * 2


def nap(seconds, value):
    time.sleep(seconds)
    return value


def where():
    """The pod's name and the server's rh home there."""
    return os.environ.get("HOSTNAME"), os.environ.get("RH_HOME")


def pod_ip(x=None):
    """The address of the pod this runs in (set by Kubernetes from the pod's status)."""
    return os.environ.get("RH_POD_IP")
