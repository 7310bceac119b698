"""The resolver a command uses, built from the configuration in force.

Today that is the embedded :class:`~kernel.injection.resolver.LocalVaultResolver`; this is the one
place the provider host will plug in (named providers routed to their processes).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kernel.injection.resolver import LocalVaultResolver, Resolver

if TYPE_CHECKING:
    from kernel.paths import Layout
    from kernel.vault import Vault


def make_resolver(layout: Layout, config_path: Path | None = None) -> Resolver:
    """The resolver for ``layout`` and the configuration found from ``config_path``.

    Without any configuration file the default provider is ``local``: ``dso://app/db`` reads the
    local vault. Raises :class:`~kernel.errors.ConfigError` for an invalid configuration.
    """
    from kernel.config import load_config

    config = load_config(config_path).config
    local = [name for name, p in config.providers.items() if p.type == "local"]
    others = {name: p.type for name, p in config.providers.items() if p.type != "local"}

    def open_vault() -> Vault:
        from kernel.vault import open_local

        return open_local(layout)

    return LocalVaultResolver(
        open_vault,
        default_provider=config.default_provider,
        local_providers=local,
        configured=others,
    )
