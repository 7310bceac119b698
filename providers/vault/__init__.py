"""The ``vault`` provider: HashiCorp Vault / OpenBao KV v1 and v2 secrets over protocol v1.

Run from source as ``python -m providers.vault``; frozen as ``dso-provider-vault``. Settings,
auth methods, addressing, change detection and the minimal policy: docs/providers/vault.md.
"""

from __future__ import annotations

from providers.vault.provider import VaultProvider

__all__ = ["VaultProvider"]
