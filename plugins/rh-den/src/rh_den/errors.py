"""The store's errors: each carries the HTTP status and kind the API answers with, and a
message that says what was wrong and what to do."""

from __future__ import annotations


class DenError(Exception):
    """Answered as ``{"error": {"kind": ..., "message": ...}}`` with ``status``."""

    def __init__(self, status: int, kind: str, message: str, **extra):
        super().__init__(message)
        self.status, self.kind, self.message, self.extra = status, kind, message, extra

    def payload(self) -> dict:
        return {"error": {"kind": self.kind, "message": self.message, **self.extra}}


def not_found(path: str) -> DenError:
    # Another user's private resource is answered exactly like one that does not exist.
    return DenError(404, "not_found", f"no resource @/{path} that you can see")


def bad(message: str) -> DenError:
    return DenError(400, "bad_request", message)
