"""Quickstart: a function and a class sent to the local cluster (a server on this machine)."""

import rh_core as rh


def concat(a: str, b: str) -> str:
    print(f"concatenating {a!r} and {b!r} on the cluster")
    return a + b


class Counter:
    """State lives on the cluster between calls."""

    def __init__(self, start: int = 0):
        self.count = start

    def incr(self, by: int = 1) -> int:
        self.count += by
        return self.count


if __name__ == "__main__":
    local = rh.cluster("local")
    remote_concat = rh.function(concat).to(local)
    print("concat ->", remote_concat("run", "house", stream_logs=True))
    print("map    ->", remote_concat.map(["a", "b", "c"], b="!"))

    RemoteCounter = rh.module(Counter).to(local)
    counter = RemoteCounter(10, name="counter")
    counter.incr()
    print("counter ->", counter.incr(5), "(count attribute:", counter.count, ")")

    port = local.client().info.base_url
    print(f"also over HTTP: curl '{port}/concat/call?a=run&b=house'")
