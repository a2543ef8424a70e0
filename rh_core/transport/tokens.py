"""Owner tokens: one per cluster, derived from the user's secret so that a leaked cluster token
opens nothing else.

The user's secret is 32 random bytes in ``$RH_HOME/secrets/owner.key`` (mode 0600), made on first
use; a cluster's owner token is ``HMAC-SHA256(secret, "cluster:" + cluster id)``. Tokens are
never written into saved configs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from rh_core.paths import rh_home, write_private

PREFIX_OWNER = "rho_"
PREFIX_GRANT = "rht_"


def _secret() -> bytes:
    path = rh_home() / "secrets" / "owner.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".owner.key.{secrets.token_hex(4)}")
    write_private(tmp, secrets.token_bytes(32).hex())
    try:
        os.link(tmp, path)  # atomic, and fails if another process made the key first
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


def cluster_token(cluster_id: str) -> str:
    """The owner token of the cluster ``cluster_id`` (stable for this user and rh home)."""
    mac = hmac.new(_secret(), f"cluster:{cluster_id}".encode(), hashlib.sha256).digest()
    return PREFIX_OWNER + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def new_grant_token() -> str:
    """A fresh random token for another user (shown once, stored on the server as a hash)."""
    return PREFIX_GRANT + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
