"""``rh secret ...`` and ``rh config ...``: secrets (values in the secret backend) and the
user's defaults (``~/.rh/config.yaml``), as command groups of :mod:`rh_core.cli`."""

from __future__ import annotations

import getpass
import json
import sys

import typer
from rich.table import Table

from rh_core import configs, user_config
from rh_core.cli_common import _cluster, _show, friendly
from rh_core.resources import secret_factories as sf

secret_app = typer.Typer(help="Secrets: values in the secret backend, references under ~/secrets.",
                         no_args_is_help=True)


@secret_app.command("list")
@friendly
def secret_list(backend: str = typer.Option(None, help="list what this backend holds instead")
                ) -> None:
    """List the saved secrets: name, provider, backend and keys (never a value)."""
    if backend:
        typer.echo("\n".join(sf.secrets(backend=backend)))
        return
    table = Table(title="secrets")
    for col in ("name", "provider", "backend", "keys"):
        table.add_column(col)
    for name in sf.secrets():
        s = sf.load_secret(name)
        table.add_row(name, s.provider or "-", s.backend or "-", ", ".join(s.keys))
    _show(table)


@secret_app.command("set")
@friendly
def secret_set(name: str = typer.Argument(...),
               pairs: list[str] = typer.Argument(..., help="KEY=VALUE, KEY=- (read from stdin) or "
                                                 "KEY (asked for, not echoed)"),
               backend: str = typer.Option(None, help="where the values go (default: the "
                                           "secret_backend config)"),
               overwrite: bool = typer.Option(False, help="replace a secret saved under NAME")
               ) -> None:
    """Save a secret of your own. A value typed on the command line stays in the shell's history
    and is seen by other local users while the command runs: prefer KEY or KEY=-."""
    values = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            value = getpass.getpass(f"{key}: ")
        elif value == "-":
            value = sys.stdin.readline().rstrip("\n")
        values[key] = value
    sf.secret(name=name, values=values, backend=backend).save(overwrite=overwrite)
    typer.echo(f"saved secret {name!r} (keys: {', '.join(sorted(values))})")


@secret_app.command("get")
@friendly
def secret_get(name: str = typer.Argument(...),
               show: bool = typer.Option(False, "--show", help="print the values (JSON)")) -> None:
    """Show a saved secret: its reference, and its values only with --show."""
    s = sf.load_secret(name)
    if show:
        typer.echo(json.dumps(s.values, indent=2))
        return
    typer.echo(json.dumps({"name": s.name, "provider": s.provider, "backend": s.backend,
                           "keys": s.keys, "saved_at": s.rns_address}, indent=2))


@secret_app.command("delete")
@friendly
def secret_delete(name: str = typer.Argument(...)) -> None:
    """Delete a saved secret: its values from the backend and its reference."""
    sf.load_secret(name).delete()
    typer.echo(f"deleted secret {name!r}")


@secret_app.command("to")
@friendly
def secret_to(name: str = typer.Argument(...), cluster_name: str = typer.Argument(...),
              env: str = typer.Option(None, help="the env whose workers get its variables")) -> None:
    """Send a saved secret to a cluster (files in its home, variables of an env's workers)."""
    sf.load_secret(name).to(_cluster(cluster_name), env=env)
    typer.echo(f"sent secret {name!r} to cluster {cluster_name!r}")


config_app = typer.Typer(help="Defaults in ~/.rh/config.yaml (never secrets).", no_args_is_help=True)


@config_app.command("list")
@friendly
def config_list() -> None:
    """Every key, its value in force, and where it comes from."""
    table = Table(title=str(configs.path()))
    for col in ("key", "value", "from"):
        table.add_column(col)
    sources = configs.sources()
    for key, value in configs.all().items():
        table.add_row(key, json.dumps(value), sources[key])
    _show(table)


@config_app.command("get")
@friendly
def config_get(key: str = typer.Argument(...)) -> None:
    """Print one key's value in force (JSON)."""
    typer.echo(json.dumps(user_config.value(key)))


@config_app.command("set")
@friendly
def config_set(key: str = typer.Argument(...), value: str = typer.Argument(...)) -> None:
    """Set a key in the file (true/false, numbers, text; null for none)."""
    user_config.set_value(key, user_config.parse_text(key, value) if key in user_config.KEYS
                          else value)
    typer.echo(f"{key} = {json.dumps(user_config.file_values()[key])} in {user_config.config_file()}")


@config_app.command("unset")
@friendly
def config_unset(key: str = typer.Argument(...)) -> None:
    """Remove a key from the file (its default is in force again)."""
    gone = user_config.unset_value(key)
    typer.echo(f"{key} {'removed from' if gone else 'was not set in'} {user_config.config_file()}")
