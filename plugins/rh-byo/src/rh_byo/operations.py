"""What users do on the nodes of a byo cluster besides calling functions: shell commands,
setup commands run once, Python with the cluster's Python, a terminal, JupyterLab."""

from __future__ import annotations

import hashlib
import subprocess

from rh_byo.ssh import SSHNode
from rh_core.errors import ConfigError
from rh_core.transport import tokens

NODE_HOME = "~/.rh"


def run(provider, commands: list[str] | str, node: str | int = 0) -> list[tuple[int, str, str]]:
    """Shell commands on a node (index, address or "all"): ``[(code, stdout, stderr)]``."""
    cmds = [commands] if isinstance(commands, str) else list(commands)

    def on(n) -> list[tuple[int, str, str]]:
        return [(p.returncode, p.stdout, p.stderr) for p in (n.run(c, check=False) for c in cmds)]

    # Nodes side by side; the results node by node, in the order of ips.
    return [r for per_node in provider.each(on, provider.ssh_nodes(node)) for r in per_node]


def run_setup(provider, commands: list[str] | str) -> list[tuple[int, str, str]]:
    """Each command once per cluster: the ones that ran are recorded on the head node and
    skipped; a failing command is not recorded and raises."""
    cmds = [commands] if isinstance(commands, str) else list(commands)
    head = provider.node
    done_file = f"{provider.cluster_dir}/setup.done"
    head.run(f"mkdir -p {provider.cluster_dir}; touch {done_file}")
    done = set(head.run(f"cat {done_file}").stdout.split())
    out = []
    for c in cmds:
        digest = hashlib.sha256(c.encode()).hexdigest()[:16]
        if digest in done:
            out.append((0, "", "(already run on this cluster)"))
            continue
        p = head.run(c, check=False)
        out.append((p.returncode, p.stdout, p.stderr))
        if p.returncode != 0:
            raise ConfigError(f"setup command `{c}` failed on {head.target} "
                              f"(exit code {p.returncode}): {(p.stdout + p.stderr)[-2000:]}")
        head.run(f"echo {digest} >> {done_file}")
    return out


def run_python(provider, lines: list[str] | str, node: str | int = 0) -> list[tuple[int, str, str]]:
    """Python code with the cluster's Python (``~/.rh/venv``, else python3), on its input."""
    code = lines if isinstance(lines, str) else "\n".join(lines)
    out = []
    for n in provider.ssh_nodes(node):
        p = n.run(f'P={NODE_HOME}/venv/bin/python; [ -x "$P" ] || P=python3; "$P" -',
                  input=code, check=False)
        out.append((p.returncode, p.stdout, p.stderr))
    return out


def ssh(provider, command: str | None = None) -> int:
    """A terminal on the head node (or one command); its exit code."""
    node = provider.node
    if not isinstance(node, SSHNode):  # a paramiko node: its own terminal session
        return node.shell(command)
    args = ["ssh", "-t", *node.options(), node.target]
    return subprocess.call(args + ([command] if command else []))


def notebook(provider, port: int = 8888) -> str:
    """JupyterLab on the head node, reached through a forwarded port: the URL to open."""
    node = provider.node
    has = node.run(f"{NODE_HOME}/venv/bin/python -c 'import jupyterlab' 2>/dev/null "
                   f"&& echo yes || echo no").stdout.strip()
    if has != "yes":
        raise ConfigError(
            f"JupyterLab is not installed on {node.target}: install it into the "
            f"cluster's Python first, e.g. cluster.run(['~/.rh/venv/bin/python -m pip "
            f"install jupyterlab']) (or give an env with reqs=['jupyterlab'])")
    token = tokens.new_grant_token()[4:24]
    node.run(f"setsid nohup {NODE_HOME}/venv/bin/python -m jupyterlab --no-browser "
             f"--ip 127.0.0.1 --port {port} --IdentityProvider.token={token} "
             f"> {provider.cluster_dir}/notebook.log 2>&1 < /dev/null &")
    local = node.forward(port)
    return f"http://127.0.0.1:{local}/lab?token={token}"
