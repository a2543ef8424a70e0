"""Bad input and failures say what was wrong and what to do.

Boundary: the SkyPilot SDK functions (``tests/sky_standin.py``), scripted to raise SkyPilot's
own exceptions (``sky.exceptions``) where a cloud would make SkyPilot raise them, or to report a
cluster without SSH credentials; where a check is rh's own (an unknown cloud, a bad field) no
SDK function is called at all.
"""

from __future__ import annotations

import pytest
from rh_byo.ssh import free_port
from rh_skypilot.errors import CapacityError, NoCloudError, SkyPilotError, SSHDetailsMissing

import rh_core as rh
from rh_core.errors import ConfigError


def cluster(name="sky-err", **fields):
    return rh.ondemand_cluster(name=name, **{"instance_type": "A10G:1", "provider": "aws",
                                             "server_port": free_port(), **fields})


def test_no_cloud_enabled_says_run_sky_check(standin):
    standin.configure(fail={"launch": ["NoCloudAccessError",
                                       "Cloud access is not set up. Run: `sky check`"]})
    with pytest.raises(NoCloudError) as e:
        cluster().up()
    text = str(e.value)
    assert "no cloud is enabled for SkyPilot on this machine" in text
    assert "Run `sky check` to see which clouds it can use" in text
    assert "Cloud access is not set up" in text  # SkyPilot's own reason
    # and the last lines of its log, colours and markup removed
    assert "SkyPilot's last lines:\n  Considered resources (1 node)" in text
    assert "  Launching sky-err" in text and "\x1b[" not in text


def test_unknown_provider_is_refused_before_skypilot_is_asked(standin):
    with pytest.raises(ConfigError, match=r"'nocloud' is not a valid cloud among.*provider="):
        cluster(provider="nocloud").up()
    assert standin.calls() == []


def test_unknown_region_says_which_arguments_to_check(standin):
    standin.configure(fail={"launch": ["ValueError", "Invalid region 'mars-1'"]})
    with pytest.raises(ConfigError) as e:
        cluster(region="mars-1").up()
    assert "Invalid region 'mars-1'" in str(e.value)
    assert "Check provider=, region=, zone= and instance_type=" in str(e.value)


def test_accelerator_no_cloud_offers(standin):
    """SkyPilot's optimizer found nothing before trying any region: an empty failover
    history."""
    standin.configure(fail={"launch": ["ResourcesUnavailableError",
                                       "Catalog does not contain any instances satisfying the "
                                       "request: 1x AWS({'Z999': 1})."]})
    with pytest.raises(ConfigError) as e:
        cluster(instance_type="Z999:1").up()
    assert "no enabled cloud offers these resources" in str(e.value)
    assert "sky show-gpus" in str(e.value) and "Z999" in str(e.value)


def test_quota_or_capacity_failure(standin):
    """Regions were tried and refused: a failover history."""
    standin.configure(fail={"launch": ["ResourcesUnavailableError",
                                       "Failed to acquire resources in all zones in us-east-1 "
                                       "(InsufficientInstanceCapacity).", 3]})
    with pytest.raises(CapacityError) as e:
        cluster().up()
    text = str(e.value)
    assert "out of capacity or over a quota" in text and "InsufficientInstanceCapacity" in text
    assert "Try another region= or provider=" in text


def test_ssh_details_missing_from_skypilots_status(standin):
    standin.configure(no_credentials=True)
    c = cluster("sky-nokey")
    with pytest.raises(SSHDetailsMissing) as e:
        c.up()
    assert "reports cluster 'sky-nokey' as UP but its status lacks the SSH user and the SSH " \
           "key" in str(e.value)
    assert "sky status --refresh sky-nokey" in str(e.value)
    standin.configure()
    c.down()


def test_stop_of_a_cluster_skypilot_does_not_know(standin):
    with pytest.raises(SkyPilotError, match="SkyPilot has no cluster named 'sky-none' to stop"):
        cluster("sky-none").stop()


def test_a_skypilot_failure_keeps_its_reason(standin):
    standin.configure(fail={"status": ["ApiServerConnectionError", "Could not connect to "
                                       "SkyPilot API server at http://127.0.0.1:46580."]})
    with pytest.raises(SkyPilotError, match="reading the status of 'sky-err' failed in "
                                            "SkyPilot: Could not connect to SkyPilot API server"):
        cluster().up()


def test_a_spot_cluster_is_not_stopped_but_says_use_down(standin):
    c = cluster("sky-spot", use_spot=True)
    c.up()
    try:
        with pytest.raises(SkyPilotError, match="spot instances.*use c.down\\(\\)"):
            c.stop()
        assert not standin.calls("stop")
    finally:
        c.down()
