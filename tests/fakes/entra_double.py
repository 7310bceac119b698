"""Microsoft Entra ID token endpoints, as azure-identity's real credentials call them.

- Client secret (MSAL ``ConfidentialClientApplication``, authority ``<origin>/<tenant>`` with
  instance discovery disabled): ``GET /<tenant>/v2.0/.well-known/openid-configuration``, then
  ``POST /<tenant>/oauth2/v2.0/token`` with ``grant_type=client_credentials``. A wrong secret is
  ``401 invalid_client`` with ``AADSTS7000215`` as Entra ID answers.
- App Service managed identity (``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``):
  ``GET /msi/token?api-version=2019-08-01&resource=…`` with the ``X-IDENTITY-HEADER`` header.

Tokens are random strings remembered with their expiry; the Key Vault double accepts exactly
those (:meth:`TokenIssuer.valid`).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
import uuid
from email.message import Message
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.https_server import Reply

#: Where App Service's token endpoint lives on the double.
MSI_PATH = "/msi/token"

_AAD_ROUTE = re.compile(r"/([^/]+)/(v2\.0/\.well-known/openid-configuration|oauth2/v2\.0/token)")


class TokenIssuer:
    """One tenant with one application (client secret) and one managed identity."""

    def __init__(
        self,
        *,
        tenant_id: str = "72f988bf-86f1-41af-91ab-2d7cd011db47",
        client_id: str = "dso-test-client",
        client_secret: str | None = None,
        identity_header: str | None = None,
        token_lifetime: int = 3600,
    ) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret or "cs-" + secrets.token_hex(12)
        self.identity_header = identity_header or "ih-" + secrets.token_hex(12)
        self.token_lifetime = token_lifetime
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}

    def valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and expiry > time.time()

    def revoke(self) -> None:
        with self._lock:
            self._tokens.clear()

    def _issue(self) -> tuple[str, int]:
        token = "at-" + secrets.token_urlsafe(24)
        expires = int(time.time()) + self.token_lifetime
        with self._lock:
            self._tokens[token] = expires
        return token, expires

    def route(
        self,
        origin: str,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Message,
        body: bytes,
    ) -> Reply:
        """Answer a token-side request (anything that is not a vault request)."""
        found = _AAD_ROUTE.fullmatch(path)
        if found and found.group(2).startswith("v2.0") and method == "GET":
            base = f"{origin}/{found.group(1)}"
            return Reply(
                200,
                {
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "issuer": f"{base}/v2.0",
                    "jwks_uri": f"{base}/discovery/v2.0/keys",
                    "token_endpoint_auth_methods_supported": ["client_secret_post"],
                    "response_types_supported": ["code", "id_token", "token"],
                },
            )
        if found and method == "POST":
            return self._client_credentials(found.group(1), body)
        if path == MSI_PATH and method == "GET":
            return self._managed_identity(query, headers)
        raise Reply(404, {"error": "not_found", "error_description": f"no route {method} {path}"})

    def _client_credentials(self, tenant: str, body: bytes) -> Reply:
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if tenant != self.tenant_id:
            raise Reply(400, aad_error("invalid_request", 90002, f"Tenant '{tenant}' not found."))
        if form.get("grant_type") != "client_credentials":
            raise Reply(400, aad_error("unsupported_grant_type", 70003, "Unsupported grant."))
        if form.get("client_id") != self.client_id:
            raise Reply(400, aad_error("unauthorized_client", 700016, "Application not found."))
        if form.get("client_secret") != self.client_secret:
            raise Reply(
                401, aad_error("invalid_client", 7000215, "Invalid client secret provided.")
            )
        if not form.get("scope", "").endswith("/.default"):
            raise Reply(
                400, aad_error("invalid_scope", 1002012, "The scope must end in /.default.")
            )
        token, _ = self._issue()
        return Reply(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            },
        )

    def _managed_identity(self, query: dict[str, str], headers: Message) -> Reply:
        if headers.get("X-IDENTITY-HEADER") != self.identity_header:
            raise Reply(401, {"statusCode": 401, "message": "Unauthorized: bad header"})
        token, expires = self._issue()
        return Reply(
            200,
            {
                "access_token": token,
                "expires_on": str(expires),
                "resource": query.get("resource", ""),
                "token_type": "Bearer",
            },
        )


def aad_error(error: str, code: int, description: str) -> dict[str, Any]:
    """An Entra ID error body."""
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {description}",
        "error_codes": [code],
        "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
        "trace_id": str(uuid.uuid4()),
        "correlation_id": str(uuid.uuid4()),
    }
