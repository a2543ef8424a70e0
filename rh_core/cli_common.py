"""What every group of the ``rh`` command line shares: rh's errors as one line, tables that
are not wrapped when piped, and finding a cluster by name."""

from __future__ import annotations

import functools
import time

import typer
from rich.console import Console
from rich.table import Table

from rh_core.builtin.local import cluster_from_record
from rh_core.errors import ResourceNotFoundError, RhError
from rh_core.paths import rh_home
from rh_core.resources.factories import cluster

console = Console()


def _cluster(name: str):
    """A saved cluster, ``local``, or a local cluster this machine has run under that name."""
    if name == "local":
        return cluster_from_record("local")
    try:
        return cluster(name)
    except ResourceNotFoundError:
        if (rh_home() / "clusters" / name).is_dir():
            return cluster_from_record(name)
        raise


def friendly(fn):
    """Print rh's own errors as one clear line on stderr (exit code 1), not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RhError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _show(table: Table) -> None:
    """A table; piped to another program, it is not wrapped to 80 columns."""
    (console if console.is_terminal else Console(width=200)).print(table)


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
