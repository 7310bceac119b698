"""Fixtures of the integration layer: real back-end servers (tests/integration/servers.py)."""

from __future__ import annotations

from tests.integration.servers import (
    fresh_openbao,
    moto,
    no_ca_bundles,
    openbao,
    provider_clients,
)

__all__ = ["fresh_openbao", "moto", "no_ca_bundles", "openbao", "provider_clients"]
