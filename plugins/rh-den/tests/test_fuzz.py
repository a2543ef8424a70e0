"""A bounded fuzz run of the store's own OpenAPI document with schemathesis, without a token,
with a user's token and with an admin's: whatever the inputs, the store answers 2xx or 4xx,
never a 500, and keeps serving."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import settings
from rh_den import __version__
from rh_den.openapi import document

schema = schemathesis.openapi.from_dict(document(__version__))


@pytest.fixture(scope="module")
def callers(sqlite_store):
    _, token = sqlite_store.user("fuzz")
    return {"anonymous": {}, "user": {"Authorization": f"Bearer {token}"},
            "admin": {"Authorization": f"Bearer {sqlite_store.admin_token}"}}


@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True)
@pytest.mark.parametrize("who", ["anonymous", "user", "admin"])
def test_no_server_error(case, sqlite_store, callers, who):
    response = case.call(base_url=sqlite_store.url, headers=callers[who], timeout=30)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])


def test_store_still_serves_after_fuzzing(sqlite_store, callers):
    http = sqlite_store.http(sqlite_store.admin_token)
    assert http.get("/health").json()["ok"] is True
    assert http.get("/v1/whoami").json()["user"] == "admin"
