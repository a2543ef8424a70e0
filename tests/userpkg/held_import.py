"""A module whose import waits while the file named by ``$RH_HOLD_IMPORT`` exists, so that a
test can keep a restarted server busy restoring what it served."""

from __future__ import annotations

import os
from pathlib import Path

from waiting import wait_until

_hold = os.environ.get("RH_HOLD_IMPORT")
if _hold:
    wait_until(lambda: not Path(_hold).exists(), 60, f"{_hold} to be removed")


def value():
    return "restored"
