"""The resolver a command uses, built from the configuration in force."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kernel.injection.host_resolver import ProviderHostResolver

if TYPE_CHECKING:
    from kernel.paths import Layout
    from kernel.provider_host import ProviderHost


def make_resolver(layout: Layout, config_path: Path | None = None) -> ProviderHostResolver:
    """The resolver for ``layout`` and the configuration found from ``config_path``.

    Every reference is resolved by its provider process through the provider host. Without any
    configuration file the default provider is ``local``: ``dso://app/db`` reads the local vault
    through ``dso-provider-local``. Raises :class:`~kernel.errors.ConfigError` for an invalid
    configuration.
    """
    from kernel.config import load_config

    config = load_config(config_path).config

    def open_host() -> ProviderHost:
        from kernel.provider_host import ProviderHost

        return ProviderHost(config, layout)

    return ProviderHostResolver(config, open_host)
