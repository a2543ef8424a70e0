"""A byo cluster of three hosts: network namespaces on this machine, each with its own address,
sshd, rh home and /tmp (``rh_byo.netns``). Bring-up installs rh on all three, starts a Ray head
on the first and joins the others to it; ``.map`` spreads over every node through Ray."""

from __future__ import annotations

import pwd

import pytest
import userfns
from rh_byo import netns

import rh_core as rh


@pytest.fixture(scope="module")
def hosts(netns_tools):
    h = netns.start_hosts(3)
    yield h
    h.stop()


@pytest.fixture(scope="module")
def three(hosts):
    c = rh.cluster(name="byo-three", ips=hosts.ips, ssh_creds=hosts.creds,
                   ray_args=["--object-store-memory=100000000"])
    yield c
    c.down()


def test_three_nodes_come_up_and_map_spreads_over_all_of_them(three, hosts, capfd):
    f = rh.function(userfns.node_address).to(three)
    shown = capfd.readouterr().err
    for step in ("connecting to rhray@" + hosts.ips[0] + " and 2 more node(s)",
                 "shipping wheels to 3 nodes", "starting Ray on 3 nodes", "starting the server"):
        assert f"rh byo-three: {step}" in shown, shown
    assert f() == hosts.ips[0]  # a plain call runs on the head node
    places = f.map(range(60))
    assert len(places) == 60 and set(places) == set(hosts.ips)


def test_map_items_on_other_nodes_stream_their_output(three, hosts, capfd):
    f = rh.function(userfns.say_where).to(three)
    capfd.readouterr()
    places = f.map(range(30), stream_logs=True)
    out = capfd.readouterr().out
    assert set(places) == set(hosts.ips)
    for i, where in enumerate(places):
        assert f"item {i} on {where}" in out  # printed on that node, shown here


def test_starmap_keeps_order_and_a_failing_item_says_where(three, hosts):
    f = rh.function(userfns.fails_on).to(three)
    assert f.starmap([(i, -1) for i in range(40)]) == [i * 10 for i in range(40)]
    with pytest.raises(ValueError, match="item 7 is bad") as info:
        f.map(range(40))
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "in map item 7, on node" in notes and "fails_on" in notes


def test_env_packages_are_built_on_every_node(three, hosts):
    # Each node gets its own copy of a plain folder; the env puts it on sys.path on each node.
    made = three.run(["mkdir -p ~/extras && echo 'VALUE = 100' > ~/extras/rh_extra_mod.py"],
                     node="all")
    assert [code for code, _, _ in made] == [0, 0, 0]
    env = rh.env(name="extras", reqs=["local:~/extras"])
    f = rh.function(userfns.extra_value).to(three, env=env)
    assert f.map(range(30)) == [100 + i for i in range(30)]


def test_run_on_all_nodes_answers_node_by_node(three, hosts):
    out = three.run("hostname -I", node="all")
    assert [stdout.split()[0] for _, stdout, _ in out] == hosts.ips
    assert three.run("hostname -I", node=hosts.ips[2])[0][1].split()[0] == hosts.ips[2]


def test_second_bring_up_finds_all_nodes_ready(three, capfd):
    capfd.readouterr()
    three.up_if_not()
    rh.function(userfns.add).to(three)
    shown = capfd.readouterr().err
    assert "starting Ray" not in shown and "shipping wheels" not in shown, shown


def test_restart_server_keeps_ray_running(three, hosts, capfd):
    f = rh.function(userfns.node_address).to(three)
    capfd.readouterr()
    three.restart_server()
    shown = capfd.readouterr().err
    assert "starting the server" in shown and "starting Ray" not in shown, shown
    assert set(f.map(range(30))) == set(hosts.ips)


def test_a_node_whose_ray_died_still_maps_and_a_restart_brings_it_back(three, hosts, capfd):
    f = rh.function(userfns.node_address).to(three)
    killed = three.run("kill -9 $(ps -s $(cat ~/.rh/clusters/byo-three/ray.pid) -o pid=)", node=2)
    assert killed[0][0] == 0, killed
    places = f.map(range(30))  # the chunks meant for that node run on the other two
    assert len(places) == 30 and set(places) <= set(hosts.ips[:2])
    capfd.readouterr()
    three.restart_server()
    assert "starting Ray on 3 nodes" in capfd.readouterr().err
    assert set(f.map(range(30))) == set(hosts.ips)


def test_down_stops_ray_and_the_server_on_every_node(three, hosts):
    three.down()
    uid = pwd.getpwnam(hosts.user).pw_uid
    for i in range(3):
        left = [p for p in hosts.pids(i) if _owner(p) == uid]
        assert left == [], (hosts.ips[i], [open(f"/proc/{p}/cmdline").read() for p in left])


def _owner(pid: int) -> int | None:
    try:
        return int(open(f"/proc/{pid}/status").read().split("Uid:")[1].split()[0])
    except OSError:
        return None
