"""``python -m providers.vault``: run the Vault/OpenBao provider (``--describe`` for metadata)."""

from __future__ import annotations

from providers.sdk import serve
from providers.vault.provider import VaultProvider

if __name__ == "__main__":
    serve(VaultProvider)
