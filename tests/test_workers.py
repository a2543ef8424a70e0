"""Env worker processes: user code never runs in the server; a crashing worker is restarted."""

from __future__ import annotations

import os
import time

import pytest
import userfns
from waiting import wait_until

import rh_core as rh
from rh_server.process import CANCEL_GRACE


def test_user_code_runs_in_a_worker_not_the_server(local):
    worker_pid = rh.function(userfns.pid).to(local)()
    server_pid = local.client().health()["pid"]
    assert worker_pid not in (server_pid, os.getpid())
    assert worker_pid == local.status()["envs"]["base"]["workers"][0]["pid"]


def test_the_base_env_worker_is_ready_before_the_first_function(own_cluster):
    """A new server starts the base env's worker at once (rh_server.served.Served.prestart), so
    the first function sent without env= runs in that worker instead of waiting for one."""
    import time

    own_cluster.up()
    deadline = time.monotonic() + 60
    while True:
        workers = own_cluster.status()["envs"].get("base", {}).get("workers", [])
        if workers and workers[0]["pid"] and workers[0]["alive"]:
            break
        assert time.monotonic() < deadline, own_cluster.status()["envs"]
        time.sleep(0.05)
    assert not own_cluster.status()["resources"]  # nothing was sent yet
    first = workers[0]["pid"]
    assert rh.function(userfns.pid).to(own_cluster)() == first
    assert own_cluster.status()["envs"]["base"]["workers"][0]["restarts"] == 0


@pytest.mark.parametrize("crash", ["die", "segfault"])
def test_crashing_worker_is_reported_and_restarted(own_cluster, crash):
    env = rh.env(name=f"crashy-{crash}")
    crasher = rh.function(getattr(userfns, crash)).to(own_cluster, env=env)
    add = rh.function(userfns.add).to(own_cluster, env=env)
    before = rh.function(userfns.pid).to(own_cluster, env=env)()
    with pytest.raises(rh.WorkerCrashedError) as info:
        crasher()
    expected = "SIGSEGV" if crash == "segfault" else "exited with code 3"
    assert expected in str(info.value) and "restarted" in str(info.value)
    # The server kept serving, and the next call works in a new worker.
    assert own_cluster.client().health()["status"] == "ok"
    assert add(2, 3) == 5
    after = rh.function(userfns.pid).to(own_cluster, env=env)()
    assert after != before
    workers = own_cluster.status()["envs"][f"crashy-{crash}"]["workers"]
    assert [w["restarts"] for w in workers] == [1]  # restarted once, for the one crash


def test_other_envs_are_untouched_by_a_crash(own_cluster):
    steady = rh.function(userfns.pid).to(own_cluster, env=rh.env(name="steady"))
    pid = steady()
    with pytest.raises(rh.WorkerCrashedError):
        rh.function(userfns.die).to(own_cluster, env=rh.env(name="crashing"))()
    assert steady() == pid


def test_instance_comes_back_fresh_after_crash(own_cluster):
    c = rh.module(userfns.Counter).to(own_cluster, env=rh.env(name="inst"))(5, name="crashing_counter")
    assert c.incr() == 6
    with pytest.raises(rh.WorkerCrashedError):
        c.die()
    assert c.incr() == 6  # __init__ ran again in the new worker: state starts over


def test_several_processes_share_calls(own_cluster):
    env = rh.env(name="multi", processes=2, threads=1)
    f = rh.function(userfns.sleepy_pid).to(own_cluster, env=env)
    used = set(f.map([0.3, 0.3]))
    pids = {w["pid"] for w in own_cluster.status()["envs"]["multi"]["workers"]}
    assert len(pids) == 2 and used == pids


def _owner_token(cluster) -> str:
    token = cluster.client().http.headers["authorization"].removeprefix("Bearer ")
    assert token.startswith("rho_") and len(token) > 40  # the real token, so the checks bite
    return token


def test_user_code_never_sees_the_owner_token(local):
    token = _owner_token(local)
    getenv = rh.function(userfns.getenv).to(local, name="getenv_owner_token")
    assert getenv("RH_SERVER_TOKEN") is None
    environment = rh.function(userfns.environment).to(local)
    env = rh.env(name="token_free", env_vars={"SOME_VAR": "1"})
    in_own_env = rh.function(userfns.environment).to(local, env=env, name="environment_own_env")
    for seen, env_key in ((environment(), "base"), (in_own_env(), "token_free")):
        assert seen["RH_ENV"] == env_key  # it is that env's worker's environment
        assert [k for k, v in seen.items() if token in k or token in v] == []


def test_user_code_cannot_read_the_owner_token_from_its_server(local):
    token = _owner_token(local)
    seen = rh.function(userfns.server_environ).to(local)()
    assert "RH_HOME=" in seen  # it did read the server's environment
    assert token not in seen


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(") ", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry))
    return out


def test_a_first_function_with_other_base_settings_leaves_one_worker(own_cluster):
    """The first function asks for the base env with settings of its own while the server may
    still be starting that env's worker with the defaults: its worker replaces that one, and
    no worker of the defaults is left running beside it."""
    env = rh.env(name="base", env_vars={"RH_TEST_FIRST": "mine"})
    getenv = rh.function(userfns.getenv).to(own_cluster, env=env)
    assert getenv("RH_TEST_FIRST") == "mine"
    server = own_cluster.client().health()["pid"]
    [worker] = [w["pid"] for w in own_cluster.status()["envs"]["base"]["workers"]]
    assert _children(server) == [worker]


def test_new_env_settings_while_a_call_runs_serve_the_new_function(own_cluster):
    """Sending a function with other settings of the base env while a call runs there replaces
    that env's worker: the running call reports its worker's end, and restarting after that end
    starts the env as it is now instead of changing it back under the new function."""
    handle = rh.function(userfns.sleep_then).to(own_cluster).remote("late", 60)
    env = rh.env(name="base", env_vars={"RH_TEST_SECOND": "new"})
    getenv = rh.function(userfns.getenv).to(own_cluster, env=env)
    assert getenv("RH_TEST_SECOND") == "new"
    with pytest.raises(rh.WorkerCrashedError):
        rh.get(handle)
    assert getenv("RH_TEST_SECOND") == "new"  # still the new settings after the restart
    server = own_cluster.client().health()["pid"]
    [worker] = [w["pid"] for w in own_cluster.status()["envs"]["base"]["workers"]]
    assert _children(server) == [worker]


def test_calls_beyond_the_threads_wait_for_the_first_free_one_and_cancel_cleanly(own_cluster,
                                                                                tmp_path):
    """An env's threads each run one call; further calls wait on the server for the first
    thread that is free (not behind one particular long call), and a waiting call that is
    cancelled ends at once without its worker being replaced."""
    env = rh.env(name="two", threads=2)
    wait = rh.function(userfns.start_then_wait).to(own_cluster, env=env)
    add = rh.function(userfns.add).to(own_cluster, env=env)
    files = {k: tmp_path / k for k in ("a-started", "a-go", "b-started", "b-go")}
    a = wait.remote(str(files["a-started"]), str(files["a-go"]), "a")
    b = wait.remote(str(files["b-started"]), str(files["b-go"]), "b")
    wait_until(lambda: files["a-started"].exists() and files["b-started"].exists(), 20,
               "both threads to be busy")
    workers = own_cluster.status()["envs"]["two"]["workers"]
    queued = add.remote(1, 2)
    assert queued.cancel() is True
    with pytest.raises(rh.RunCancelledError):
        rh.get(queued)
    time.sleep(2 * CANCEL_GRACE)  # past the grace a running call has to stop in: a queued
    waiting = add.remote(2, 3)    # call is no reason to replace the worker
    files["a-go"].write_text("go")
    assert rh.get(a) == "a"
    assert rh.get(waiting) == 5  # ran on a's thread while b still runs
    assert next(r["status"] for r in own_cluster.runs() if r["run_key"] == b.run_key) \
        == "running"
    files["b-go"].write_text("go")
    assert rh.get(b) == "b"
    after = own_cluster.status()["envs"]["two"]["workers"]
    assert [(w["pid"], w["restarts"]) for w in after] == \
        [(w["pid"], w["restarts"]) for w in workers]
