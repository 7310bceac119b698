"""The vault provider's settings (the ``configure`` map from dso.yaml), validated strictly.

    address          https://vault:8200            or $VAULT_ADDR
    namespace        team-a                        or $VAULT_NAMESPACE (Vault Enterprise/OpenBao)
    mount            secret                        the KV secrets engine's mount path
    kv_version       2                             2 (versioned) or 1
    ca_file          /etc/ssl/vault-ca.pem         or $VAULT_CACERT; else the system CAs
    client_cert      /etc/dso/vault-client.pem     TLS client certificate (with client_key)
    client_key       /etc/dso/vault-client.key
    tls_skip_verify  false                         only an explicit true turns checks off
    token            ${VAULT_TOKEN}                token auth: the token itself
    token_file       /run/secrets/vault-token      token auth: a file holding it (re-read on
                                                   failure, so an agent may rotate it)
    auth:                                          another auth method instead of a token
      method         approle | kubernetes | jwt | token
      mount          where the method is enabled   default: the method's name
      role_id, secret_id, secret_id_file           approle
      role, jwt_file                               kubernetes, jwt
    fingerprint_secret  ${DSO_KV1_KEY}             KV v1 only: key of the version fingerprint

Environment fallbacks only work when the provider's ``env`` list in dso.yaml passes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from providers.sdk import InvalidRequest
from providers.sdk.settings import SettingsReader

PROVIDER = "vault"

KNOWN_SETTINGS = (
    "address",
    "namespace",
    "mount",
    "kv_version",
    "ca_file",
    "client_cert",
    "client_key",
    "tls_skip_verify",
    "token",
    "token_file",
    "auth",
    "fingerprint_secret",
)
KNOWN_AUTH_SETTINGS = (
    "method",
    "mount",
    "role_id",
    "secret_id",
    "secret_id_file",
    "role",
    "jwt_file",
)

#: Where a pod's service-account token is mounted: the default ``jwt_file`` for kubernetes.
KUBERNETES_JWT_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class AuthMethod(StrEnum):
    """How the provider obtains its Vault token."""

    #: A token given directly (``token``, ``token_file`` or ``$VAULT_TOKEN``).
    TOKEN = "token"  # noqa: S105 - a method name, not a password
    #: AppRole login with ``role_id`` and (usually) a ``secret_id``.
    APPROLE = "approle"
    #: Kubernetes login with the pod's service-account JWT.
    KUBERNETES = "kubernetes"
    #: JWT/OIDC login with a JWT read from a file.
    JWT = "jwt"


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Credentials of one auth method; the unused fields stay None."""

    method: AuthMethod
    mount: str
    token: str | None = None
    token_file: Path | None = None
    role_id: str | None = None
    secret_id: str | None = None
    secret_id_file: Path | None = None
    role: str | None = None
    jwt_file: Path | None = None

    def __repr__(self) -> str:  # credentials never reach a log through a repr
        return f"AuthSettings(method={self.method.value!r}, mount={self.mount!r})"


@dataclass(frozen=True, slots=True)
class VaultSettings:
    """Everything ``configure`` accepted, ready for the client."""

    address: str
    auth: AuthSettings
    mount: str = "secret"
    kv_version: int = 2
    namespace: str | None = None
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    tls_skip_verify: bool = False
    fingerprint_secret: str | None = field(default=None, repr=False)

    @property
    def verify(self) -> bool | str:
        """The ``verify`` argument of requests: a CA file, True (system CAs) or False."""
        if self.tls_skip_verify:
            return False
        return str(self.ca_file) if self.ca_file is not None else True

    @property
    def cert(self) -> tuple[str, str] | None:
        if self.client_cert is None or self.client_key is None:
            return None
        return (str(self.client_cert), str(self.client_key))

    @classmethod
    def parse(cls, settings: Mapping[str, Any], environ: Mapping[str, str]) -> VaultSettings:
        """Validate ``settings``; raises :class:`InvalidRequest` naming the bad key."""
        reader = SettingsReader(settings, provider=PROVIDER)
        reader.check_keys(KNOWN_SETTINGS)
        address = reader.text("address", environ.get("VAULT_ADDR") or None)
        if address is None:
            raise reader.fail("address", "is required (or pass VAULT_ADDR through 'env')")
        parts = urlsplit(address)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise reader.fail("address", "must be an http:// or https:// URL with a host")
        mount = _clean_mount(reader, "mount", reader.text("mount", "secret") or "secret")
        kv_version = reader.integer("kv_version", 2, minimum=1, maximum=2)
        client_cert = reader.path("client_cert")
        client_key = reader.path("client_key")
        if (client_cert is None) != (client_key is None):
            missing = "client_key" if client_key is None else "client_cert"
            raise reader.fail(missing, "is required when the other half of the client pair is set")
        for key, path in (("client_cert", client_cert), ("client_key", client_key)):
            if path is not None and not path.is_file():
                raise reader.fail(key, f"names {str(path)!r}, which is not a file")
        ca_file = reader.path("ca_file", environ.get("VAULT_CACERT") or None)
        if ca_file is not None and not ca_file.exists():
            raise reader.fail("ca_file", f"names {str(ca_file)!r}, which does not exist")
        return cls(
            address=address.rstrip("/"),
            auth=_parse_auth(reader, environ),
            mount=mount,
            kv_version=kv_version,
            namespace=reader.text("namespace", environ.get("VAULT_NAMESPACE") or None),
            ca_file=ca_file,
            client_cert=client_cert,
            client_key=client_key,
            tls_skip_verify=reader.flag("tls_skip_verify", False),
            fingerprint_secret=reader.text("fingerprint_secret"),
        )


def _clean_mount(reader: SettingsReader, key: str, value: str) -> str:
    mount = value.strip("/")
    segments = mount.split("/")
    if not mount or any(seg in ("", ".", "..") for seg in segments):
        raise reader.fail(key, "must be a mount path such as 'secret' or 'team/kv'")
    return mount


def _parse_auth(reader: SettingsReader, environ: Mapping[str, str]) -> AuthSettings:
    section = reader.section("auth")
    if section is not None:
        section.check_keys(KNOWN_AUTH_SETTINGS)
        choices = [m.value for m in AuthMethod]
        method = AuthMethod(section.choice("method", choices, AuthMethod.TOKEN.value))
    else:
        method = AuthMethod.TOKEN
    if method is AuthMethod.TOKEN:
        if section is not None and any(
            section.has(k) for k in KNOWN_AUTH_SETTINGS if k != "method"
        ):
            raise reader.fail(
                "auth", "with method 'token' takes no other keys: use 'token' or 'token_file'"
            )
        token = reader.text("token")
        token_file = reader.path("token_file")
        if token is None and token_file is None:
            token = environ.get("VAULT_TOKEN") or None
        if token is None and token_file is None:
            raise InvalidRequest(
                "the vault provider needs credentials: set 'token' or 'token_file', pass"
                " VAULT_TOKEN through 'env', or choose another 'auth.method'"
            )
        return AuthSettings(method, "token", token=token, token_file=token_file)
    assert section is not None
    for key in ("token", "token_file"):
        if reader.has(key):
            raise reader.fail(key, f"cannot be combined with auth.method {method.value!r}")
    mount = _clean_mount(section, "mount", section.text("mount", method.value) or method.value)
    if method is AuthMethod.APPROLE:
        if section.has("secret_id") and section.has("secret_id_file"):
            raise section.fail("secret_id_file", "cannot be combined with 'auth.secret_id'")
        return AuthSettings(
            method,
            mount,
            role_id=section.required_text("role_id", " for AppRole"),
            secret_id=section.text("secret_id"),
            secret_id_file=section.path("secret_id_file"),
        )
    default_jwt = KUBERNETES_JWT_FILE if method is AuthMethod.KUBERNETES else None
    jwt_file = section.path("jwt_file", default_jwt)
    if jwt_file is None:
        raise section.fail("jwt_file", f"is required for {method.value} auth")
    return AuthSettings(
        method,
        mount,
        role=section.required_text("role", f" for {method.value} auth"),
        jwt_file=jwt_file,
    )
