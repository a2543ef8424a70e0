"""A keyring backend that is locked, as a desktop keyring (GNOME Keyring, KWallet) is until its
user unlocks it: every read and write raises keyring's own ``KeyringLocked``. Tests select it
with ``keyring.set_keyring(LockedKeyring())``, the keyring library's way to choose a backend."""

from __future__ import annotations

from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked


class LockedKeyring(KeyringBackend):
    priority = 1

    def get_password(self, service, username):
        raise KeyringLocked("Failed to unlock the keyring!")

    def set_password(self, service, username, password):
        raise KeyringLocked("Failed to unlock the keyring!")

    def delete_password(self, service, username):
        raise KeyringLocked("Failed to unlock the keyring!")
