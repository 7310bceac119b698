"""The local provider's settings (the ``configure`` map from dso.yaml), validated strictly.

    path           the vault file          default: $DSO_HOME/vault.enc (~/.dso/vault.enc)
    key_file       the 32-byte key file    default: $DSO_HOME/vault.key
    watch          auto | inotify | poll   default: auto
    poll_interval  seconds, 0.05-60        default: 1.0 (polling mode only)

The passphrase of a passphrase-protected vault is never a setting: it comes from
``DSO_VAULT_PASSPHRASE`` in the provider's environment, which the host passes only when the
provider's ``env`` allow-list names it (and ``DSO_HOME`` likewise, for the defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.paths import Layout, local_layout
from providers.local.watcher import POLL_INTERVAL, WatchMode
from providers.sdk.settings import SettingsReader

KNOWN_SETTINGS = ("path", "key_file", "watch", "poll_interval")
MIN_POLL_INTERVAL = 0.05
MAX_POLL_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class LocalSettings:
    """Where the vault and its key are, and how changes are noticed."""

    path: Path
    key_file: Path
    watch: WatchMode = WatchMode.AUTO
    poll_interval: float = POLL_INTERVAL

    @classmethod
    def parse(cls, settings: Mapping[str, Any], layout: Layout | None = None) -> LocalSettings:
        """Validate ``settings``; raises ``InvalidRequest`` naming the bad key."""
        reader = SettingsReader(settings, provider="local")
        reader.check_keys(KNOWN_SETTINGS)
        layout = layout if layout is not None else local_layout()
        watch = reader.choice("watch", [mode.value for mode in WatchMode], WatchMode.AUTO.value)
        interval = reader.number(
            "poll_interval", POLL_INTERVAL, minimum=MIN_POLL_INTERVAL, maximum=MAX_POLL_INTERVAL
        )
        return cls(
            _absolute(reader, "path", layout.vault),
            _absolute(reader, "key_file", layout.vault_key),
            WatchMode(watch),
            interval,
        )


def _absolute(reader: SettingsReader, name: str, default: Path) -> Path:
    path = reader.path(name)
    if path is None:
        return default
    if not path.is_absolute():
        raise reader.fail(name, "must be an absolute path (or start with ~)")
    return path
