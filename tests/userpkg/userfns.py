"""User code the tests send to clusters (importable, so it travels by module path)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from pathlib import Path

from waiting import wait_until


def concat(a, b):
    return a + b


def add(a, b=0):
    return a + b


def echo(x):
    return x


def boom(x):
    raise ValueError(f"bad x {x}")


def raise_custom():
    raise CustomError("custom failure", 42)


class CustomError(Exception):
    def __init__(self, message, code):
        super().__init__(message, code)
        self.code = code


def unpicklable():
    return threading.Lock()


class Opaque:
    """Nothing JSON can say about it."""


def not_json():
    return Opaque()


def pid():
    return os.getpid()


def getenv(name):
    return os.environ.get(name)


def environment():
    return dict(os.environ)


def server_environ():
    """The initial environment of the process that started this worker (its server), as the
    kernel keeps it in /proc: readable by any code running as the same user."""
    with open(f"/proc/{os.getppid()}/environ", "rb") as f:
        return f.read().decode(errors="replace")


def cwd():
    return os.getcwd()


def die(code=3):
    os._exit(code)


def segfault():
    import ctypes

    ctypes.string_at(0)


def wait_for_file(path, timeout=20.0):
    wait_until(Path(path).exists, timeout, f"{path} to appear")


def start_then_wait(started, release, value="done"):
    """Creates ``started``, then returns ``value`` once ``release`` exists: the caller knows the
    call is running, and decides when it ends."""
    Path(started).write_text("started")
    wait_for_file(release)
    return value


def print_then_wait(path):
    print("first line", flush=True)
    print("to stderr", file=sys.stderr)
    wait_for_file(path)
    print("second line")
    return "done"


def count_up(n, path=None):
    for i in range(n):
        if path is not None and i == 1:
            wait_for_file(path)
        yield i


async def async_add(a, b):
    await asyncio.sleep(0.01)
    return a + b


async def async_count(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i * 10


_barrier = {}


def meet(parties, tag):
    """Returns only if ``parties`` calls with the same tag run at the same time."""
    b = _barrier.setdefault(tag, threading.Barrier(parties))
    b.wait(timeout=20)
    return tag


def append_to(path, value, delay=0.05):
    """Appends start/end markers; overlapping calls would interleave them."""
    with open(path, "a") as f:
        f.write(f"start {value}\n")
    time.sleep(delay)
    with open(path, "a") as f:
        f.write(f"end {value}\n")
    return value


def sleep_then(value, seconds):
    time.sleep(seconds)
    return value


def scale(x, factor=1, offset=0):
    return x * factor + offset


def total(values):
    return sum(values)


def make_list(n):
    return list(range(n))


def version_of(module):
    import importlib

    m = importlib.import_module(module)
    return getattr(m, "__version__", "no version"), getattr(m, "__file__", None)


def has_module(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


class Counter:
    """State kept between calls on the cluster."""

    def __init__(self, start=0, step=1):
        self.count = start
        self.step = step
        self.history = []

    def incr(self, by=None):
        self.count += self.step if by is None else by
        self.history.append(self.count)
        return self.count

    def pid(self):
        return os.getpid()

    def fail(self):
        raise KeyError("missing")

    def countdown(self, n):
        for i in range(n, 0, -1):
            yield i

    async def later(self, x):
        await asyncio.sleep(0.01)
        return x + self.count

    def die(self):
        os._exit(1)


def sleepy_pid(seconds):
    time.sleep(seconds)
    return os.getpid()


def node_address(x=None):
    """The address of the node this runs on (its first one)."""
    import subprocess

    return subprocess.check_output(["hostname", "-I"], text=True).split()[0]


def fails_on(x, bad=7):
    if x == bad:
        raise ValueError(f"item {x} is bad")
    return x * 10


def extra_value(x):
    """A value from a module that only an env's packages provide."""
    import rh_extra_mod

    return rh_extra_mod.VALUE + x


def make_vectors(n):
    """A result of a class that exists only where ``rh_cluster_only`` is importable."""
    import rh_cluster_only

    return rh_cluster_only.Vectors([[float(i)] for i in range(n)])


def count_rows(vectors):
    return len(vectors.rows)


class Box:
    """A class with private state, and class-level helpers callable without an instance."""

    unit = "cm"

    def __init__(self, size=1):
        self.size = size
        self._secret = "inside"

    def volume(self):
        return self.size ** 3

    def _hidden(self):
        return "not reachable"

    @classmethod
    def cube_unit(cls, n):
        return f"{n}{cls.unit}^3"

    @staticmethod
    def area(w, h):
        return w * h


async def async_double(x):
    await asyncio.sleep(0)
    return 2 * x


async def async_sleep(seconds):
    await asyncio.sleep(seconds)
    return "slept"


def busy(seconds, path=None):
    """Python code that keeps running (no blocking call) for ``seconds``; writes ``path`` (if
    given) once it runs."""
    if path:
        Path(path).write_text("started")
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


def sleep_marked(path, seconds):
    """Writes ``path`` once it runs, then sleeps in C (``time.sleep``), then says so."""
    Path(path).write_text("started")
    time.sleep(seconds)
    Path(path).write_text("finished")
    return "finished"


def here_keys_and_run(key):
    """From code on the cluster: rh.here reaches its own server."""
    import rh_core as rh

    here = rh.here
    here.put(key, {"from": "inside"})
    return sorted(here.keys()), here.run(["echo inside"]), type(here).__name__


def outer_calls_inner(n):
    """Prints, then calls another function it serves on the same cluster, which prints too."""
    import rh_core as rh

    print("outer starts")
    inner = rh.function(inner_printer).to(rh.here, name="inner_printer")
    result = inner(n)
    print("outer ends")
    return result


def inner_printer(n):
    for i in range(n):
        print(f"inner line {i}")
    return n


def worker_token_reach(url):
    """What the worker's own token may do (manage tokens: it may not), and whether rh.here uses
    it."""
    import httpx

    import rh_core as rh

    token = os.environ["RH_CLUSTER_TOKEN"]
    r = httpx.get(f"{url}/auth/tokens", headers={"Authorization": f"Bearer {token}"})
    return r.status_code, rh.here.client().http.headers["authorization"] == f"Bearer {token}"


def np_array(values):
    import numpy as np

    return np.array(values) * 2


def frame(n):
    import pandas as pd

    return pd.DataFrame({"i": list(range(n)), "sq": [i * i for i in range(n)]})


def common_values():
    import dataclasses
    import datetime
    import uuid

    import numpy as np

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    return {"when": datetime.date(2026, 12, 2), "tags": {"b", "a"}, "raw": b"hi",
            "point": Point(1, 2), "id": uuid.UUID(int=1), "mean": np.float32(0.5),
            "count": np.int64(3)}


def shout(x):
    print(f"item {x} here")
    return x * 10


def outer_maps(n):
    """Maps a function served on the same cluster from code running there."""
    import rh_core as rh

    print("outer maps")
    mapped = rh.function(shout).to(rh.here, name="shout")
    return mapped.map(list(range(n)))


def say_where(x):
    """Prints the address of the node it runs on; returns it."""
    where = node_address()
    print(f"item {x} on {where}")
    return where
