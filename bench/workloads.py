"""Functions the benchmarks send to the cluster (importable, so they go by module pointer)."""


def trivial(x):
    """Returns its argument: a call that measures only the plumbing."""
    return x


def sleeper(seconds):
    """Blocks in C (time.sleep): what a cancel can only stop by replacing the worker."""
    import time

    time.sleep(seconds)


async def async_sleeper(seconds):
    """Waits on the event loop: what a cancel stops at once."""
    import asyncio

    await asyncio.sleep(seconds)
