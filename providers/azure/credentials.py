"""The azure-identity credential named by the ``credential`` setting.

- ``client_secret`` → ``ClientSecretCredential(tenant_id, client_id, client_secret)``: a service
  principal, through MSAL against ``authority_host`` (default: the public cloud).
- ``managed_identity`` → ``ManagedIdentityCredential(client_id=…)``: the host's identity (IMDS
  on VMs/AKS nodes; App Service, Functions, Arc and Cloud Shell endpoints from their
  environment variables, which the provider's ``env`` list must pass through).
- ``default`` → ``DefaultAzureCredential``: environment variables (``AZURE_TENANT_ID``,
  ``AZURE_CLIENT_ID``, ``AZURE_CLIENT_SECRET``…), workload identity, managed identity, then the
  developer logins (Azure CLI, PowerShell, azd). Only variables in the provider's ``env`` list
  reach it; ``AZURE_TOKEN_CREDENTIALS`` (e.g. ``prod``) narrows the chain.

Every credential gets the same TLS trust (``ca_file``) as the vault client. An authority host
MSAL does not know (Azure Stack, a test double) gets ``disable_instance_discovery``, since
instance discovery only knows Microsoft's clouds.

azure.identity is imported inside :func:`make_credential`, not at module level: it costs about
0.2 s, and the handshake must not wait for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from providers.azure.settings import AzureSettings, CredentialKind

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

#: Entra ID hosts MSAL's instance discovery knows.
KNOWN_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)

#: The Key Vault resource of the public cloud: the scope asked for when the vault URL does not
#: show its cloud (a private endpoint's custom DNS name, an IP address).
DEFAULT_SCOPE = "https://vault.azure.net/.default"

_VAULT_HOST = re.compile(r"[a-z0-9-]+\.((?:vault|managedhsm)\.[a-z0-9.-]+)")


def token_scope(vault_url: str) -> str:
    """The scope of a Key Vault token for ``vault_url``: ``https://vault.azure.net/.default``
    for ``<name>.vault.azure.net``, the sovereign clouds' equivalent for theirs."""
    host = (urlsplit(vault_url).hostname or "").lower()
    found = _VAULT_HOST.fullmatch(host)
    return f"https://{found.group(1)}/.default" if found else DEFAULT_SCOPE


def make_credential(settings: AzureSettings, transport: Mapping[str, Any]) -> TokenCredential:
    """A new credential for ``settings``; ``transport`` holds azure-core pipeline options
    (``connection_verify``, ``connection_timeout``, retry counts) shared with the vault client."""
    from azure.identity import (
        ClientSecretCredential,
        DefaultAzureCredential,
        ManagedIdentityCredential,
    )

    options = dict(transport)
    authority: dict[str, Any] = {}
    if settings.authority_host is not None:
        authority["authority"] = settings.authority_host
        host = (urlsplit(settings.authority_host).hostname or "").lower()
        if host not in KNOWN_AUTHORITY_HOSTS:
            authority["disable_instance_discovery"] = True
    if settings.credential is CredentialKind.CLIENT_SECRET:
        assert settings.tenant_id and settings.client_id and settings.client_secret
        return ClientSecretCredential(
            settings.tenant_id,
            settings.client_id,
            settings.client_secret,
            **authority,
            **options,
        )
    if settings.credential is CredentialKind.MANAGED_IDENTITY:
        # The managed identity sources have their own retry schedules (IMDS retries 404/410/
        # 429/5xx for a while): give them only the TLS and connection options.
        return ManagedIdentityCredential(client_id=settings.client_id, **_tls_only(options))
    identity: dict[str, Any] = {}
    if settings.client_id is not None:
        identity["managed_identity_client_id"] = settings.client_id
        identity["workload_identity_client_id"] = settings.client_id
    return DefaultAzureCredential(
        exclude_interactive_browser_credential=True,
        **identity,
        **authority,
        **_tls_only(options),
    )


def _tls_only(options: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in options.items()
        if key in ("connection_verify", "connection_timeout")
    }
