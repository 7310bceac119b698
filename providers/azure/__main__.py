"""``python -m providers.azure``: run the Azure Key Vault provider (``--describe`` for metadata)."""

from __future__ import annotations

from providers.azure.provider import AzureProvider
from providers.sdk import serve

if __name__ == "__main__":
    serve(AzureProvider)
