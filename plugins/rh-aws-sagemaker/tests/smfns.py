"""Functions the SageMaker tests send to the job (importable, so they travel by module path)."""

from __future__ import annotations

import os


def chatter(n):
    for i in range(n):
        print(f"job line {i}", flush=True)
    return n


def double(array):
    return array * 2


def where():
    """The server's rh home and the cluster name it was started with."""
    return os.environ.get("RH_CLUSTER_NAME"), os.environ.get("RH_HOME")


class Counter:
    def __init__(self, start=0):
        self.value = start

    def add(self, n=1):
        self.value += n
        return self.value
