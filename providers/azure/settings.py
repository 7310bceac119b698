"""The azure provider's settings (the ``configure`` map from dso.yaml), validated strictly.

    vault_url                  https://<vault>.vault.azure.net            required
    credential                 client_secret | managed_identity | default  default: default
    tenant_id                  directory (tenant) id                        client_secret only
    client_id                  application id; for managed_identity and default: the
                               user-assigned identity's client id (optional)
    client_secret              the application's secret                     client_secret only
    authority_host             Entra ID host, e.g. login.microsoftonline.us default: public cloud
    ca_file                    PEM bundle to trust instead of the system's  optional
    verify_challenge_resource  check the 401 challenge names this vault's    default: true
                               domain (false only for private test doubles)
    api_version                Key Vault REST api-version                   default: the SDK's
    change_detection           properties | value                           default: properties
    retries                    connection retries per call, 0-5             default: 1
    connect_timeout            seconds to open a connection, 0.1-60         default: 5
    concurrency                parallel calls per batch, 1-32               default: 8

Pure validation (no azure import), so it is unit-tested alone and ``configure`` rejects a bad
setting before any network call. docs/providers/azure.md is the user documentation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from providers.sdk.settings import SettingsReader

PROVIDER = "azure"


class CredentialKind(StrEnum):
    """How the provider gets its Entra ID token (setting ``credential``)."""

    #: A service principal's secret: tenant_id + client_id + client_secret.
    CLIENT_SECRET = "client_secret"  # noqa: S105 (a mode name, not a secret)
    #: The managed identity of the Azure host (VM, App Service, AKS…); client_id picks a
    #: user-assigned identity.
    MANAGED_IDENTITY = "managed_identity"
    #: azure-identity's DefaultAzureCredential chain: environment, workload identity, managed
    #: identity, Azure CLI…, reading only the variables the provider's ``env`` list passes.
    DEFAULT = "default"


class ChangeDetection(StrEnum):
    """How ``versions`` finds a secret's current version (setting ``change_detection``)."""

    #: List the secret's version properties (no values; needs the list permission).
    PROPERTIES = "properties"
    #: Read the current version like ``get`` does (needs only get; the value crosses the wire).
    VALUE = "value"


#: Settings each credential kind accepts beyond the common ones.
CREDENTIAL_SETTINGS: Mapping[CredentialKind, frozenset[str]] = {
    CredentialKind.CLIENT_SECRET: frozenset(
        {"tenant_id", "client_id", "client_secret", "authority_host"}
    ),
    CredentialKind.MANAGED_IDENTITY: frozenset({"client_id"}),
    CredentialKind.DEFAULT: frozenset({"client_id", "authority_host"}),
}
COMMON_SETTINGS = frozenset(
    {
        "vault_url",
        "credential",
        "ca_file",
        "verify_challenge_resource",
        "api_version",
        "change_detection",
        "retries",
        "connect_timeout",
        "concurrency",
    }
)
KNOWN_SETTINGS: tuple[str, ...] = tuple(
    sorted(COMMON_SETTINGS.union(*CREDENTIAL_SETTINGS.values()))
)

_HOST_RE = re.compile(r"[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]{2,45}")
_API_VERSION_RE = re.compile(r"[0-9]{1,4}(\.[0-9]{1,2}|-[0-9]{2}-[0-9]{2})(-preview)?")
_TENANT_RE = re.compile(r"[A-Za-z0-9.-]{1,128}")


@dataclass(frozen=True, slots=True)
class AzureSettings:
    """One vault and how to authenticate to it. ``client_secret`` is left out of ``repr``."""

    vault_url: str
    credential: CredentialKind = CredentialKind.DEFAULT
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    authority_host: str | None = None
    ca_file: str | None = None
    verify_challenge_resource: bool = True
    api_version: str | None = None
    change_detection: ChangeDetection = ChangeDetection.PROPERTIES
    retries: int = 1
    connect_timeout: float = 5.0
    concurrency: int = 8

    @classmethod
    def parse(cls, settings: Mapping[str, Any]) -> AzureSettings:
        """Validate ``settings``; raises :class:`InvalidRequest` naming the bad key."""
        reader = SettingsReader(settings, provider=PROVIDER)
        reader.check_keys(KNOWN_SETTINGS)
        credential = CredentialKind(reader.choice("credential", _values(CredentialKind), "default"))
        takes = CREDENTIAL_SETTINGS[credential]
        for key in sorted(set(KNOWN_SETTINGS) - COMMON_SETTINGS - takes):
            if reader.has(key):
                raise reader.fail(
                    key,
                    f"does not apply to credential {credential.value!r}"
                    f" (it takes: {', '.join(sorted(takes)) or 'nothing'})",
                )
        if credential is CredentialKind.CLIENT_SECRET:
            for key in ("tenant_id", "client_id", "client_secret"):
                reader.required_text(key, " with credential 'client_secret'")
        tenant_id = reader.text("tenant_id")
        if tenant_id is not None and not _TENANT_RE.fullmatch(tenant_id):
            raise reader.fail("tenant_id", "must be a tenant id (a GUID) or a domain name")
        api_version = reader.text("api_version")
        if api_version is not None and not _API_VERSION_RE.fullmatch(api_version):
            raise reader.fail("api_version", "must be a Key Vault api-version such as 7.5")
        ca_file = reader.path("ca_file")
        if ca_file is not None and not ca_file.is_file():
            raise reader.fail("ca_file", f"names {str(ca_file)!r}, which is not a file")
        return cls(
            vault_url=_vault_url(reader),
            credential=credential,
            tenant_id=tenant_id,
            client_id=reader.text("client_id"),
            client_secret=reader.text("client_secret"),
            authority_host=_authority(reader),
            ca_file=None if ca_file is None else str(ca_file),
            verify_challenge_resource=reader.flag("verify_challenge_resource", True),
            api_version=api_version,
            change_detection=ChangeDetection(
                reader.choice("change_detection", _values(ChangeDetection), "properties")
            ),
            retries=reader.integer("retries", 1, minimum=0, maximum=5),
            connect_timeout=reader.number("connect_timeout", 5.0, minimum=0.1, maximum=60.0),
            concurrency=reader.integer("concurrency", 8, minimum=1, maximum=32),
        )


def _values(enum: type[StrEnum]) -> tuple[str, ...]:
    return tuple(item.value for item in enum)


def _vault_url(reader: SettingsReader) -> str:
    value = reader.required_text("vault_url", " (https://<vault-name>.vault.azure.net)")
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        raise reader.fail("vault_url", "is not a URL") from None
    if parts.scheme != "https":
        raise reader.fail(
            "vault_url", "must be an https URL (Key Vault refuses bearer tokens over http)"
        )
    host = parts.hostname or ""
    if not _HOST_RE.fullmatch(host) or parts.username or parts.password:
        raise reader.fail("vault_url", "must name a host, without user or password")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise reader.fail(
            "vault_url", "must be the vault's root URL (https://<vault-name>.vault.azure.net)"
        )
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"https://{host}" if port is None else f"https://{host}:{port}"


def _authority(reader: SettingsReader) -> str | None:
    value = reader.text("authority_host")
    if value is None:
        return None
    text = value.strip().rstrip("/")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname or parts.path or parts.query:
        raise reader.fail(
            "authority_host", "must be a host such as login.microsoftonline.us (https only)"
        )
    return text
