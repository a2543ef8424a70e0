"""Waiting on a condition with a deadline, for the tests and for the user code they send.

A fixed ``time.sleep`` in a test either wastes time or races on a busy machine; waiting for the
condition itself does neither, and says what never happened when it times out.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.01) -> T:
    """Call ``predicate`` until it returns a true value and return that value; after ``timeout``
    seconds raise ``TimeoutError`` saying that ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:g} s for {what}, and it did not happen")
        time.sleep(interval)
