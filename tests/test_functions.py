"""Functions on the real local cluster: calls, errors, handles, enqueue, map, logs, generators."""

from __future__ import annotations

import asyncio
import io
import sys
import threading
import traceback

import pytest
import userfns
from waiting import wait_until

import rh_core as rh


def test_call_returns_result(local):
    f = rh.function(userfns.concat).to(local)
    assert f("run", "house") == "runhouse"
    assert f(a=[1], b=[2]) == [1, 2]


def test_remote_exception_keeps_type_and_remote_traceback(local):
    f = rh.function(userfns.boom).to(local)
    with pytest.raises(ValueError, match="bad x 3") as info:
        f(3)
    shown = "".join(traceback.format_exception(info.value))
    assert "remote traceback (cluster 'local')" in shown
    assert 'raise ValueError(f"bad x {x}")' in shown
    assert "userfns.py" in shown


def test_custom_exception_attributes_survive(local):
    f = rh.function(userfns.raise_custom).to(local)
    with pytest.raises(userfns.CustomError) as info:
        f()
    assert info.value.code == 42


def test_wrong_arguments_raise_remote_type_error(local):
    f = rh.function(userfns.concat).to(local)
    with pytest.raises(TypeError, match="concat\\(\\) missing 1 required positional argument"):
        f("only one")


def test_unpicklable_result_names_its_type(local):
    f = rh.function(userfns.unpicklable).to(local)
    with pytest.raises(rh.SerializationError, match="_thread.lock"):
        f()
    assert rh.function(userfns.add).to(local)(1, 2) == 3  # the worker is fine afterwards


def test_function_defined_in_a_function_travels_by_value(local):
    factor = 7

    def times(x):
        return x * factor

    f = rh.function(times).to(local)
    assert f.pointer is None and f.code
    assert f(6) == 42


def test_name_clash_is_refused_unless_replaced(local):
    rh.function(userfns.concat).to(local, name="clashing")
    with pytest.raises(rh.NameClashError, match="already served .* by userfns:concat"):
        rh.function(userfns.add).to(local, name="clashing")
    f = rh.function(userfns.add).to(local, name="clashing", replace=True)
    assert f(2, 3) == 5


def test_redeploy_serves_changed_code(local, tmp_path):
    mod = tmp_path / "changing_mod.py"
    mod.write_text("def value():\n    return 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import changing_mod

        f = rh.function(changing_mod.value).to(local)
        assert f() == 1
        mod.write_text("def value():\n    return 2\n")
        st = mod.stat()
        import os

        os.utime(mod, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert rh.function(changing_mod.value).to(local)() == 2
    finally:
        sys.path.remove(str(tmp_path))


def test_remote_returns_handle_and_get_fetches(local):
    f = rh.function(userfns.sleep_then).to(local)
    handle = f.remote("later", 0.2)
    assert isinstance(handle, rh.RunHandle)
    assert rh.get(handle) == "later"
    assert handle.run_key in local.client().get_json("/keys")["runs"]


def test_handle_passed_as_argument_resolves_on_cluster(local):
    make = rh.function(userfns.make_list).to(local)
    total = rh.function(userfns.total).to(local)
    big = make.remote(100_000)
    # The second call gets the list on the cluster (test_runs.py shows it never reaches the client).
    summed = total.remote(big)
    assert rh.get(summed) == sum(range(100_000))
    assert total(big) == sum(range(100_000))


def test_get_on_deleted_handle_says_it_is_gone(local):
    f = rh.function(userfns.add).to(local)
    handle = f.remote(1, 1)
    assert rh.get(handle) == 2
    handle.delete()
    with pytest.raises(rh.RunNotFoundError, match="deleted, or the server restarted"):
        rh.get(handle)


def test_failed_remote_run_raises_on_get(local):
    handle = rh.function(userfns.boom).to(local).remote(5)
    with pytest.raises(ValueError, match="bad x 5"):
        rh.get(handle)


def test_enqueue_runs_one_at_a_time_in_arrival_order(local, tmp_path):
    f = rh.function(userfns.append_to).to(local)
    log = tmp_path / "order.txt"
    handles = [f.enqueue(str(log), i) for i in range(6)]
    assert [rh.get(h) for h in handles] == list(range(6))
    lines = log.read_text().splitlines()
    assert lines == [f"{w} {i}" for i in range(6) for w in ("start", "end")]


def test_calls_run_concurrently(local):
    f = rh.function(userfns.meet).to(local)
    results = []
    threads = [threading.Thread(target=lambda: results.append(f(3, "concurrent")))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == ["concurrent"] * 3


def test_map_pairs_lists_and_broadcasts_scalars(local):
    f = rh.function(userfns.scale).to(local)
    assert f.map([1, 2, 3], factor=[10, 20, 30], offset=1) == [11, 41, 91]
    assert f.map(range(100)) == list(range(100))
    assert f.starmap([(1, 2), (3, 4)], offset=100) == [102, 112]
    assert f.map([]) == []
    with pytest.raises(rh.ConfigError, match="keyword 'factor' has 2 items but there are 3"):
        f.map([1, 2, 3], factor=[1, 2])


def test_map_runs_in_parallel_on_the_worker_pool(local):
    f = rh.function(userfns.meet).to(local)
    assert f.map([4] * 4, tag="map-parallel") == ["map-parallel"] * 4


def test_map_error_names_the_item(local):
    f = rh.function(userfns.fails_on).to(local)
    with pytest.raises(ValueError, match="item 7 is bad") as info:
        f.map([1, 7, 3])
    assert "(in map item 1)" in "".join(traceback.format_exception(info.value))


class _Recorder(io.TextIOBase):
    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s
        return len(s)


def test_stream_logs_prints_remote_output_while_running(local, tmp_path, monkeypatch):
    out, err = _Recorder(), _Recorder()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    f = rh.function(userfns.print_then_wait).to(local)
    marker = tmp_path / "go"
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("v", f(str(marker), stream_logs=True)))
    t.start()
    # The first line arrives while the call still waits for the marker: it is live.
    wait_until(lambda: "first line" in out.text, 20, "the first line printed locally")
    assert "second line" not in out.text and t.is_alive()
    marker.write_text("go")
    t.join(30)
    assert result["v"] == "done"
    assert "second line" in out.text
    assert "to stderr" in err.text


def test_generator_streams_items(local, tmp_path):
    f = rh.function(userfns.count_up).to(local)
    assert list(f(4)) == [0, 1, 2, 3]
    marker = tmp_path / "more"
    it = f(3, str(marker))
    assert next(it) == 0  # first item arrives before the generator finishes
    marker.write_text("x")
    assert list(it) == [1, 2]


def test_async_function_can_be_awaited(local):
    f = rh.function(userfns.async_add).to(local)

    async def main():
        return await asyncio.gather(f(1, 2), f(3, 4))

    assert asyncio.run(main()) == [3, 7]


def test_async_generator_streams(local):
    f = rh.function(userfns.async_count).to(local)

    async def main():
        return [x async for x in f(3)]

    assert asyncio.run(main()) == [0, 10, 20]


def test_numpy_roundtrip(local):
    import numpy as np
    f = rh.function(userfns.echo).to(local)
    arr = np.arange(3_000_000, dtype=np.float64)
    out = f(arr)
    assert out.dtype == arr.dtype and np.array_equal(out, arr)


def test_map_with_a_handle_broadcast(local):
    make = rh.function(userfns.make_list).to(local)
    scale = rh.function(userfns.scale).to(local)
    factor = rh.function(userfns.add).to(local).remote(2, 1)
    assert scale.map([1, 2], factor=factor) == [3, 6]
    assert rh.get(make.remote(3)) == [0, 1, 2]


def test_saving_under_another_name_keeps_calling_the_served_function(local):
    f = rh.function(userfns.add).to(local)
    f.save("~/my-adder")
    assert rh.load("~/my-adder")(2, 2) == 4


def test_large_arrays_go_through_shared_memory_and_come_back_writable(local, monkeypatch):
    import numpy as np

    from rh_core.transport import shm

    shm_dir = local.client().info.shm_dir
    assert shm_dir and shm_dir.startswith("/dev/shm/")
    # Watch (not replace) the client's shared-memory traffic: what it writes, what it takes.
    written, taken = [], []
    write, take = shm.write, shm.take
    monkeypatch.setattr(shm, "write", lambda folder, data: written.append(data.nbytes) or
                        write(folder, data))
    monkeypatch.setattr(shm, "take", lambda folder, name, size: taken.append(size) or
                        take(folder, name, size))
    f = rh.function(userfns.echo).to(local)
    arr = np.arange(4_000_000, dtype=np.float64)  # 32 MB: above the shared-memory threshold
    out = f(arr)
    assert np.array_equal(out, arr) and out.flags.writeable
    assert written == [arr.nbytes] and taken == [arr.nbytes]  # both ways through /dev/shm
    out[0] = -1.0  # copy-on-write: changing it locally touches nothing shared
    assert f.map([arr[:10], arr])[1][0] == 0.0
    boom = rh.function(userfns.boom).to(local)
    with pytest.raises(ValueError):
        boom(arr)
    from pathlib import Path

    assert list(Path(shm_dir).glob("b-*")) == []  # every buffer was taken or cleaned up


def test_large_arrays_through_remote_handles(local):
    import numpy as np

    f = rh.function(userfns.echo).to(local)
    arr = np.ones(3_000_000)
    handle = f.remote(arr)
    assert np.array_equal(rh.get(handle), arr)
    assert np.array_equal(rh.get(handle), arr)  # a kept result can be fetched again


def test_shared_memory_full_falls_back_to_inline(local, monkeypatch):
    """A full /dev/shm is simulated at the library boundary (shm.write raising ENOSPC)."""
    import numpy as np

    from rh_core.transport import shm

    tried = []

    def full(folder, data):
        tried.append(data.nbytes)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shm, "write", full)
    f = rh.function(userfns.echo).to(local)
    arr = np.arange(300_000, dtype=np.float64)  # 2.4 MB: above the shared-memory threshold
    assert np.array_equal(f(arr), arr)
    assert tried == [arr.nbytes]  # shared memory was tried for the array, and the call still worked


def test_values_of_every_shape_come_back_as_they_were_sent(local):
    """Plain values (numbers, strings, bytes, containers of them) skip cloudpickle on both
    hops; everything else still takes it. Either way the caller gets back what it sent."""
    import enum
    import fractions

    class Colour(enum.IntEnum):  # an int subclass: not plain, pickled by cloudpickle
        RED = 1

    looped: list = [1]
    looped.append(looped)
    f = rh.function(userfns.echo).to(local)
    values = [None, True, 0, -(2 ** 70), 1.5, 2j, "", "naïve", b"\x00" * 70_000,
              bytearray(b"ab"), (1, ("a", b"b")), [], {"a": [1, {"b": None}], 3: (4,)},
              {(1, 2): "tuple key"}, list(range(1_000)), Colour.RED, fractions.Fraction(1, 3),
              [lambda: 7]]
    for value in values:
        back = f(value)
        if isinstance(value, list) and value and callable(value[0]):
            assert back[0]() == 7
            continue
        assert back == value and type(back) is type(value), value
    back = f(looped)
    assert back[0] == 1 and back[1] is back  # a list that contains itself
    r = rh.function(userfns.echo).to(local).remote(5)  # a run handle inside the arguments
    assert f((r, [r])) == (5, [5])
