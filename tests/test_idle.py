"""The server's idle rule (rh_server/idle.py) with a clock of the test's own, and its settings as
a real server reports them."""

from __future__ import annotations

import asyncio

from rh_server.active import ActiveCalls
from rh_server.idle import Idle, autostop


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_idle_counts_from_the_end_of_the_last_request():
    clock, active = Clock(), ActiveCalls()
    idle = Idle(active, clock)
    clock.now += 30
    assert idle.idle_seconds() == 30
    idle.enter()
    clock.now += 100
    assert idle.idle_seconds() == 0  # a request in flight is work, however long it takes
    idle.leave()
    clock.now += 5
    assert idle.idle_seconds() == 5


def test_a_background_call_is_work_and_is_counted():
    clock, active = Clock(), ActiveCalls()
    idle = Idle(active, clock)
    run = active.begin("f", "call", "run")
    clock.now += 600
    assert idle.idle_seconds() == 0 and idle.calls_running == 1
    active.end(run, "done")
    clock.now += 2
    assert idle.idle_seconds() == 2 and idle.calls_running == 0


def test_autostop_calls_the_hook_once_then_stops_even_when_the_hook_fails():
    clock, active = Clock(), ActiveCalls()
    idle = Idle(active, clock)
    seen = []

    def on_idle(seconds):
        seen.append(seconds)
        clock.now += 1000  # must not be asked again
        raise RuntimeError("a plugin's bug")

    async def go():
        stop = asyncio.Event()
        clock.now += 61
        await asyncio.wait_for(autostop(idle, 1, stop, on_idle), 30)
        return stop.is_set()

    assert asyncio.run(go()) is True
    assert seen == [61]


def test_autostop_waits_while_work_goes_on():
    clock, active = Clock(), ActiveCalls()
    idle = Idle(active, clock)
    call = active.begin("f", "call", "call")

    async def go():
        stop = asyncio.Event()
        task = asyncio.ensure_future(autostop(idle, 0.01, stop, lambda s: None))  # 0.6 s
        clock.now += 3600
        await asyncio.sleep(0.5)
        assert not stop.is_set()  # an hour into a call: still up
        active.end(call, "done")
        clock.now += 1
        await asyncio.wait_for(task, 10)
        return stop.is_set()

    assert asyncio.run(go()) is True
