"""The few SkyPilot SDK functions rh calls, and the log stream of a request.

rh calls ``launch``, ``status``, ``stop``, ``down``, ``autostop`` (each returns a request id)
and ``get`` / ``stream_and_get`` (which wait for a request and return its result or raise its
error), all from the module :func:`sdk` returns: ``sky`` itself, or the module named by
``RH_SKYPILOT_SDK``, which must offer the same functions (the plugin's tests name a recording
stand-in there, as a test puts a fake executable on PATH). SkyPilot's objects (``sky.Task``,
``sky.Resources``) and exceptions always come from ``sky``.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import re
from typing import Any, Callable

from rh_core.errors import ConfigError

#: The SDK functions rh calls.
FUNCTIONS = ("launch", "status", "stop", "down", "autostop", "get", "stream_and_get")
ENV = "RH_SKYPILOT_SDK"


def sdk():
    """The module whose :data:`FUNCTIONS` rh calls (``sky``, unless ``RH_SKYPILOT_SDK`` names
    another)."""
    module = importlib.import_module(os.environ.get(ENV) or "sky")
    missing = [f for f in FUNCTIONS if not callable(getattr(module, f, None))]
    if missing:
        raise ConfigError(f"{module.__name__} (from {ENV}) lacks the SkyPilot functions "
                          f"{missing}")
    return module


def refresh_mode(refresh: bool):
    """SkyPilot's ``StatusRefreshMode`` for ``refresh``: FORCE asks the clouds, NONE reads
    SkyPilot's own table."""
    from sky.utils import common  # SkyPilot takes seconds to import: only when it is called

    return common.StatusRefreshMode.FORCE if refresh else common.StatusRefreshMode.NONE


def field(record: Any, key: str, default: Any = None) -> Any:
    """A field of a status record (SkyPilot's ``StatusResponse``, or a dict)."""
    if isinstance(record, dict):
        return record.get(key, default)
    return getattr(record, key, default)


_PAYLOAD = re.compile(r"<sky-payload>(.*?)</sky-payload>")
_RICH = re.compile(r"<rich_(?:init|update|start)>(.*?)</rich_\w+>", re.S)
_MARKUP = re.compile(r"\[/?[a-z ]*\]|\x1b\[[0-9;]*[A-Za-z]")


def plain(line: str) -> str | None:
    """A line of SkyPilot's request log as text to show: its spinner messages (sent as
    ``<sky-payload>`` control lines) as their text, colours and rich markup removed; None
    for control lines that carry nothing to show."""
    m = _PAYLOAD.search(line)
    if m:
        try:
            inner = json.loads(m.group(1))
        except ValueError:
            inner = m.group(1)
        r = _RICH.search(str(inner))
        if not r:
            return None
        line = r.group(1)
    text = _MARKUP.sub("", line).strip()
    return text or None


class LineStream(io.TextIOBase):
    """A text stream for ``stream_and_get(output_stream=...)``: each complete line SkyPilot
    writes goes to ``show`` (as :func:`plain` text) and is kept (the last ``keep``) for an
    error message."""

    def __init__(self, show: Callable[[str], None], keep: int = 40):
        self.show, self.keep = show, keep
        self.lines: list[str] = []
        self._part = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._part += text
        *done, self._part = re.split(r"\r\n|\n|\r", self._part)
        for line in done:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        if self._part:
            self._line(self._part)
            self._part = ""

    def _line(self, line: str) -> None:
        text = plain(line)
        if text:
            self.lines = [*self.lines[-(self.keep - 1):], text]
            self.show(text)
