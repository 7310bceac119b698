"""The ``azure`` provider: Azure Key Vault secrets over protocol v1.

Run from source as ``python -m providers.azure``; frozen as ``dso-provider-azure``. Settings,
credentials, name mapping, change detection and permissions: docs/providers/azure.md.
Importing this package stays cheap: the Azure SDK is imported by ``configure``.
"""

from __future__ import annotations

from providers.azure.provider import AzureProvider

__all__ = ["AzureProvider"]
