"""Functions the benchmarks send to the cluster (importable, so they go by module pointer)."""


def trivial(x):
    """Returns its argument: a call that measures only the plumbing."""
    return x
