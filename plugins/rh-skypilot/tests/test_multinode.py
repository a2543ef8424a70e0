"""An on-demand cluster of two nodes: SkyPilot's status record lists both, rh brings rh and Ray
up on both, ``.map`` spreads over them.

Boundary: the SkyPilot SDK functions (``tests/sky_standin.py``), whose two-node cluster is two
hosts in network namespaces on this machine (rh-byo's ``netns.start_hosts``: each its own
address, sshd, home and /tmp). The addresses and SSH details come from the stand-in's status
record; rh-byo's bring-up (wheelhouse on both, Ray head and worker), the calls and the map run
for real. Needs root and iproute2 (a test without them fails, naming what to install).
"""

from __future__ import annotations

import pytest
import userfns
from rh_byo import netns

import rh_core as rh


@pytest.fixture(scope="module")
def hosts(sshd):
    what = netns.missing()
    if what:
        pytest.fail(f"the several-node test needs {what}", pytrace=False)
    h = netns.start_hosts(2, user="rhskyray")
    yield h
    h.stop()


def test_two_nodes_from_skypilots_record(standin, hosts, capfd):
    standin.configure([{"host": ip, "port": 22, "user": hosts.user, "key": hosts.key}
                       for ip in hosts.ips])
    c = rh.ondemand_cluster(name="sky-two", instance_type="CPU:2", num_nodes=2,
                            ray_args=["--object-store-memory=100000000"])
    try:
        f = rh.function(userfns.node_address).to(c)
        assert standin.calls("launch")[0][1]["task"]["num_nodes"] == 2
        assert c.ips == hosts.ips
        shown = capfd.readouterr().err
        for step in (f"connecting to {hosts.user}@{hosts.ips[0]} and 1 more node(s)",
                     "shipping wheels to 2 nodes", "starting Ray on 2 nodes"):
            assert f"rh sky-two: {step}" in shown, shown
        assert f() == hosts.ips[0]  # a plain call runs on the head node
        places = f.map(range(40))
        assert len(places) == 40 and set(places) == set(hosts.ips)
    finally:
        c.down()
    assert standin.calls("down")
