"""Secrets by reference: configs hold a backend's name and a key, values live in the backend.

Backends are plugins (``rh_secret_backends``); the core's own is the keyring
(:mod:`rh_core.builtin.keyring`).
"""

from __future__ import annotations

from rh_core.plugin.interfaces import SecretBackend
from rh_core.plugin.registry import registry


def secret_backend(name: str = "keyring") -> SecretBackend:
    """An instance of the installed secret backend ``name``."""
    return registry().secret_backend(name)()
