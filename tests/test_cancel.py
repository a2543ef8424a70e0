"""Stopping work: handle.cancel(), timeouts, Ctrl-C on a blocking call, and the list of runs,
on real local clusters. Python code stops where it is; code blocked in C (time.sleep) stops
when its worker is replaced after a short grace period; coroutines are cancelled at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import userfns
from waiting import wait_until

import rh_core as rh
from rh_server.process import CANCEL_GRACE


def _status(cluster, key):
    return next((r["status"] for r in cluster.runs() if r["run_key"] == key), None)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"  # a zombie has ended
    except OSError:
        return False


def _workers(cluster, env="base"):
    return [(w["pid"], w["restarts"]) for w in cluster.status()["envs"][env]["workers"]]


def test_cancel_stops_python_code_where_it_is_and_keeps_the_worker(local, tmp_path):
    busy = rh.function(userfns.busy).to(local)
    marker = tmp_path / "started"
    before = _workers(local)
    handle = busy.remote(120, str(marker))
    wait_until(marker.exists, 20, "the call to start")
    assert handle.cancel() is True
    with pytest.raises(rh.RunCancelledError, match=f"run '{handle.run_key}' was cancelled"):
        rh.get(handle)
    assert _status(local, handle.run_key) == "cancelled"
    assert _workers(local) == before  # interrupted in place: no worker was replaced
    assert busy(0) >= 0
    assert handle.cancel() is False  # it is over


def test_cancel_of_a_call_sleeping_in_c_replaces_its_worker(own_cluster, tmp_path):
    sleeper = rh.function(userfns.sleep_marked).to(own_cluster)
    marker = tmp_path / "state"
    handle = sleeper.remote(str(marker), 120)
    wait_until(lambda: marker.exists() and marker.read_text() == "started", 20,
               "the call to start")
    [(pid, restarts)] = _workers(own_cluster)
    assert handle.cancel() is True
    with pytest.raises(rh.RunCancelledError):
        rh.get(handle)
    wait_until(lambda: "did not stop" in own_cluster.logs(), 5,
               "the worker to be replaced after its grace period")
    assert rh.function(userfns.add).to(own_cluster)(2, 3) == 5  # the cluster is usable
    [(new_pid, new_restarts)] = _workers(own_cluster)
    assert new_pid != pid and new_restarts == restarts + 1
    assert marker.read_text() == "started"  # it never went on


def test_a_call_sent_as_the_stuck_worker_is_killed_runs_in_its_replacement(own_cluster,
                                                                             tmp_path):
    """The worker of a cancelled call sleeping in C is killed after the grace period; a call
    sent the moment that process is gone, before the server has handled its end, must run in
    the new worker rather than fail with the old one's end."""
    sleeper = rh.function(userfns.sleep_marked).to(own_cluster)
    add = rh.function(userfns.add).to(own_cluster)
    for round in range(3):
        marker = tmp_path / f"state-{round}"
        handle = sleeper.remote(str(marker), 120)
        wait_until(lambda m=marker: m.exists() and m.read_text() == "started", 20,
                   "the call to start")
        [(pid, _)] = _workers(own_cluster)
        assert handle.cancel() is True
        wait_until(lambda p=pid: not _running(p), 10, "the stuck worker to be killed")
        assert add(round, 1) == round + 1


def test_an_async_function_is_cancelled_at_once(local):
    sleeper = rh.function(userfns.async_sleep).to(local)
    before = _workers(local)
    handle = sleeper.remote(120)
    wait_until(lambda: _status(local, handle.run_key) == "running", 10, "the run to start")
    assert handle.cancel() is True
    with pytest.raises(rh.RunCancelledError):
        handle.result()
    assert _workers(local) == before


def test_ctrl_c_on_a_blocking_call_cancels_it_on_the_cluster(local, tmp_path, rh_home):
    marker = tmp_path / "started"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(userfns.__file__.rsplit('/', 1)[0])!r})
        import userfns, rh_core as rh
        busy = rh.function(userfns.busy).to(rh.cluster("local"), name="busy_interrupted")
        busy(120, {str(marker)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(marker.exists, 30, "the call to start")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "KeyboardInterrupt" in err
    wait_until(lambda: any(r["name"] == "busy_interrupted" and r["status"] == "cancelled"
                           for r in local.runs()), 10, "the call to be cancelled on the cluster")


def test_a_timeout_cancels_the_call_and_names_its_run(local):
    busy = rh.function(userfns.busy).to(local)
    with pytest.raises(rh.RunTimeoutError, match=r"took more than 0.5 s; its run 'busy@\w+' "
                                                  r"was cancelled") as info:
        busy(120, timeout=0.5)
    key = info.value.run_key
    wait_until(lambda: _status(local, key) == "cancelled", 10, "the run to be cancelled")
    assert busy(0, timeout=30) >= 0  # the cluster is usable, and a quick call is unaffected
    assert isinstance(info.value, TimeoutError)


def test_get_with_a_timeout_names_the_run_and_leaves_it_going(local):
    sleeper = rh.function(userfns.async_sleep).to(local)
    handle = sleeper.remote(1.5)
    with pytest.raises(rh.RunTimeoutError, match=f"run '{handle.run_key}' .* did not end "
                                                 f"within 0.2 s; it goes on"):
        rh.get(handle, timeout=0.2)
    assert rh.get(handle) == "slept"


def test_an_enqueued_run_waiting_for_its_turn_is_cancelled(local):
    busy = rh.function(userfns.busy).to(local, name="busy_queue")
    first = busy.enqueue(1.0)
    second = busy.enqueue(0)
    assert second.cancel() is True
    with pytest.raises(rh.RunCancelledError):
        rh.get(second)
    assert rh.get(first) >= 0  # the one before it is untouched


def test_runs_lists_runs_and_calls_with_status_and_duration(local):
    add = rh.function(userfns.add).to(local, name="add_listed")
    kept = add.remote(1, 2)
    rh.get(kept)
    assert add(2, 2) == 4
    listed = {r["run_key"]: r for r in local.runs()}
    assert listed[kept.run_key]["kind"] == "run" and listed[kept.run_key]["status"] == "done"
    calls = [r for r in listed.values() if r["name"] == "add_listed" and r["kind"] == "call"]
    assert calls and calls[-1]["status"] == "done" and calls[-1]["duration"] >= 0
    assert all({"run_key", "name", "method", "created", "finished"} <= set(r) for r in calls)
    out = subprocess.run([sys.executable, "-m", "rh_core.cli", "runs", "local"], text=True,
                         capture_output=True, env=dict(os.environ), timeout=60)
    assert out.returncode == 0 and kept.run_key in out.stdout and "done" in out.stdout
    out = subprocess.run([sys.executable, "-m", "rh_core.cli", "runs", "local", "--json"],
                         text=True, capture_output=True, env=dict(os.environ), timeout=60)
    assert kept.run_key in [r["run_key"] for r in json.loads(out.stdout)]


def test_cancelling_an_unknown_run_says_so(local):
    with pytest.raises(rh.RunNotFoundError, match="no run 'no-such-run'"):
        local.cancel("no-such-run")


def test_a_cancel_reaches_a_call_while_every_thread_of_its_env_is_busy(own_cluster, tmp_path):
    """Each call thread busy with Python code: the cancel is still read by the worker (it keeps
    a thread for that) and stops its call in place, the others running on."""
    env = rh.env(name="busy2", threads=2)
    busy = rh.function(userfns.busy).to(own_cluster, env=env)
    marks = [tmp_path / "one", tmp_path / "two"]
    one, two = (busy.remote(30, str(m)) for m in marks)
    wait_until(lambda: all(m.exists() for m in marks), 20, "both calls to start")
    before = _workers(own_cluster, "busy2")
    assert one.cancel() is True
    with pytest.raises(rh.RunCancelledError):
        rh.get(one)
    time.sleep(2 * CANCEL_GRACE)  # past the grace after which a call not stopped is killed
    assert _status(own_cluster, two.run_key) == "running"
    assert _workers(own_cluster, "busy2") == before  # stopped in place, nothing replaced
    assert two.cancel() is True


def test_an_env_of_one_thread_runs_its_calls_in_turn_and_each_cancel_reaches_its_call(
        own_cluster, tmp_path):
    """One call thread (it reads the worker's lane): a second call waits on the server while
    the first runs; a cancel of the running one travels on the worker's other socket and stops
    it in place; the waiting one then runs in the same process, and a cancel of a call still
    waiting ends it without reaching the worker."""
    env = rh.env(name="single", threads=1)
    busy = rh.function(userfns.busy).to(own_cluster, env=env)
    first, second, third = (tmp_path / n for n in ("first", "second", "third"))
    one = busy.remote(30, str(first))
    wait_until(first.exists, 20, "the first call to start")
    before = _workers(own_cluster, "single")
    two = busy.remote(0.2, str(second))
    three = busy.remote(30, str(third))
    time.sleep(0.5)
    assert not second.exists() and _status(own_cluster, two.run_key) == "running"
    assert three.cancel() is True  # still waiting for the thread: ends on the server
    assert one.cancel() is True
    with pytest.raises(rh.RunCancelledError):
        rh.get(one)
    assert rh.get(two) > 0 and second.exists()
    with pytest.raises(rh.RunCancelledError):
        rh.get(three)
    assert not third.exists()
    time.sleep(2 * CANCEL_GRACE)  # past the grace after which a call not stopped is killed
    assert _workers(own_cluster, "single") == before  # stopped in place, nothing replaced
    assert busy(0) >= 0
