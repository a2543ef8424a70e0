"""Classes on the real local cluster: one remote instance keeps its state between calls."""

from __future__ import annotations

import asyncio

import pytest
import userfns

import rh_core as rh


def test_instance_keeps_state_and_attributes_are_readable(local):
    RemoteCounter = rh.module(userfns.Counter).to(local)
    c = RemoteCounter(10, step=5, name="counter_a")
    assert c.incr() == 15
    assert c.incr(by=2) == 17
    assert c.count == 17
    assert c.history == [15, 17]


def test_two_instances_are_independent(local):
    RemoteCounter = rh.module(userfns.Counter).to(local)
    a, b = RemoteCounter(0, name="ind_a"), RemoteCounter(100, name="ind_b")
    a.incr()
    a.incr()
    assert b.incr() == 101
    assert a.count == 2


def test_instance_methods_modes(local):
    RemoteCounter = rh.module(userfns.Counter).to(local)
    c = RemoteCounter(1, name="modes")
    assert list(c.countdown(3)) == [3, 2, 1]
    assert asyncio.run(c.later(41)) == 42
    h = c.incr.remote()
    assert rh.get(h) == 2
    assert c.incr.map([0, 0, 0]) == [2, 2, 2]
    # Three calls at once on the one instance: every step lands on its state. Each call returns
    # the count as it read it, which depends on how the calls interleaved.
    stepped = c.incr.map([1, 1, 1])
    assert c.count == 5
    assert len(stepped) == 3 and all(3 <= n <= 5 for n in stepped), stepped
    assert c.incr.starmap([(0,), (0,)]) == [5, 5]


def test_method_exception_raised_locally(local):
    c = rh.module(userfns.Counter).to(local)(name="failing")
    with pytest.raises(KeyError, match="missing"):
        c.fail()


def test_unknown_method_is_not_found(local):
    c = rh.module(userfns.Counter).to(local)(name="unknown_method")
    with pytest.raises(rh.RemoteFunctionNotFound, match="no public method or attribute 'nope'"):
        local.client().call("unknown_method", "nope")
    with pytest.raises(rh.RemoteFunctionNotFound, match="no public method or attribute 'nope'"):
        c.nope  # noqa: B018 - attribute read goes to the cluster


def test_instance_saved_and_loaded_by_name(local):
    c = rh.module(userfns.Counter).to(local)(7, name="saved_counter")
    c.save("~/saved_counter")
    again = rh.module(name="~/saved_counter")
    assert again.incr() == 8
    assert again.count == 8


def test_module_defined_locally_travels_by_value(local):
    class Local:
        def __init__(self, x):
            self.x = x

        def double(self):
            return self.x * 2

    obj = rh.module(Local).to(local)(21, name="local_cls")
    assert obj.double() == 42
