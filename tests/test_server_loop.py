"""The server's event loop: uvloop by default when it is installed (the server extra installs
it), the standard library's with ``--loop asyncio`` / ``$RH_SERVER_LOOP``; calls, logs and remote
errors work the same on both. Real local cluster servers over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import userfns

import rh_core as rh


def record(rh_home, cluster) -> dict:
    return json.loads((rh_home / "clusters" / cluster.name / "server.json").read_text())


def test_the_server_runs_on_uvloop_when_it_is_installed(own_cluster, rh_home):
    pytest.importorskip("uvloop", reason="the server extra installs uvloop on this platform")
    f = rh.function(userfns.add).to(own_cluster)
    assert f(1, 2) == 3
    assert record(rh_home, own_cluster)["loop"] == "uvloop"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_calls_logs_and_errors_are_the_same_on_either_loop(own_cluster, rh_home, monkeypatch,
                                                           capfd, loop):
    monkeypatch.setenv("RH_SERVER_LOOP", loop)  # the local cluster's server inherits it
    add = rh.function(userfns.add).to(own_cluster)
    assert record(rh_home, own_cluster)["loop"] == loop
    assert add(2, 3) == 5
    assert add.remote(4, 5).result() == 9
    with pytest.raises(TypeError) as e:
        add(1, "x")
    assert "unsupported operand" in str(e.value)


def test_asking_for_uvloop_where_it_is_missing_says_how_to_get_it(tmp_path):
    # A Python that cannot import uvloop: the server refuses at once and says what to do.
    code = ("import sys; sys.modules['uvloop'] = None; sys.argv[0] = 'rh_server'; "
            "from rh_server.main import main; main(['--loop', 'uvloop', '--port', '0', "
            f"'--home', {str(tmp_path)!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "uvloop is not installed" in out.stderr and "--loop asyncio" in out.stderr
