"""An HTTPS double of Azure Key Vault's secrets REST API, with Entra ID's token endpoints.

No emulator of Key Vault exists, so the real ``azure-keyvault-secrets`` ``SecretClient`` and the
real ``azure-identity`` credentials are driven against this server. It speaks the API as those
clients use it:

- **Challenge auth**: a vault request without a valid bearer token gets ``401`` with
  ``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
  resource="https://vault.azure.net"``; the client asks its credential for a token and repeats
  the request. Clients pass ``verify_challenge_resource=False`` (127.0.0.1 is not under
  vault.azure.net) and trust :attr:`KeyVaultDouble.ca_file` explicitly.
- **Tokens** (:mod:`tests.fakes.entra_double`): the client-secret flow under ``/<tenant>/``
  (point the credential's authority at :attr:`KeyVaultDouble.origin`) and App Service managed
  identity (:attr:`identity_endpoint`, :attr:`identity_header`).
- **Secrets** (``api-version`` required): ``GET /secrets`` (paged), ``GET /secrets/{name}/``
  (latest; the SDK sends the trailing slash), ``GET /secrets/{name}/{version}``,
  ``GET /secrets/{name}/versions`` (paged, in no particular order), ``PUT /secrets/{name}``;
  bodies shaped as Azure's (``value``, ``id`` = ``https://<host>/secrets/<name>/<version>``,
  ``attributes`` with unix seconds, ``tags``, ``contentType``), errors as
  ``{"error": {"code", "message"[, "innererror"]}}``, values limited to 25 KiB.

Test controls: :meth:`set_secret`, :meth:`set_enabled`, :meth:`delete_secret`, :meth:`deny`,
:meth:`inject` (fail the next vault requests), ``tokens.revoke()``, and :attr:`requests`
(what was asked, so a test can check that a change check read no value). The Azure SDK caches
challenges process-wide by host:port: use a fresh double (a fresh port) per test.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fakes.entra_double import MSI_PATH, TokenIssuer
from tests.fakes.https_server import HTTPSServer, Reply
from tests.fakes.tls_certs import TLSFiles, make_tls_files

#: api-version values the double accepts (the SDK sends its newest by default).
API_VERSIONS = frozenset(
    {"7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"}
)
RESOURCE = "https://vault.azure.net"
NAME_RE = re.compile(r"[0-9a-zA-Z-]{1,127}")
#: Key Vault's limit on a secret value (25 KiB), and its page size.
MAX_VALUE = 25 * 1024
PAGE_SIZE = 25
#: TLS, proxy and Azure variables: never let this machine's decide what a test trusts or uses.
CLEARED_ENV = (
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "AWS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
)


@dataclass
class _Version:
    id: str
    value: str = field(repr=False)
    created: int
    updated: int
    enabled: bool = True
    tags: dict[str, str] | None = None
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the double received (no bodies: they may hold values)."""

    method: str
    path: str
    query: dict[str, str]
    authorized: bool


@dataclass
class _Fault:
    status: int
    code: str
    times: int
    retry_after: int | None


def _error(status: int, code: str, message: str, inner: str | None = None) -> Reply:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner is not None:
        error["innererror"] = {"code": inner}
    return Reply(status, {"error": error})


def _not_found(what: str) -> Reply:
    message = f"A secret with (name/id) {what} was not found in this key vault."
    return _error(404, "SecretNotFound", message)


class KeyVaultDouble:
    """The double; use :func:`running_double`, or :meth:`start` and :meth:`stop`."""

    def __init__(self, tls: TLSFiles, **token_options: Any) -> None:
        self.tls = tls
        self.tokens = TokenIssuer(**token_options)
        self.requests: list[RequestRecord] = []
        self._lock = threading.Lock()
        #: Lower-cased name → (name as created, versions oldest first).
        self._secrets: dict[str, tuple[str, list[_Version]]] = {}
        self._denied: set[str] = set()
        self._list_denied: set[str] = set()
        self._faults: list[_Fault] = []
        self._server: HTTPSServer | None = None

    def start(self) -> KeyVaultDouble:
        self._server = HTTPSServer(self.tls, self.handle)
        self._server.begin()
        return self

    def stop(self) -> None:
        """Stop listening and drop kept-alive connections: clients now find nothing there."""
        if self._server is not None:
            self._server.stop()

    @property
    def origin(self) -> str:
        """``https://127.0.0.1:<port>``: the vault URL, and the credential authority."""
        assert self._server is not None, "the double was never started"
        return f"https://127.0.0.1:{self._server.port}"

    vault_url = origin

    @property
    def identity_endpoint(self) -> str:
        return self.origin + MSI_PATH

    @property
    def ca_file(self) -> Path:
        return self.tls.ca_file

    tenant_id = property(lambda self: self.tokens.tenant_id)
    client_id = property(lambda self: self.tokens.client_id)
    client_secret = property(lambda self: self.tokens.client_secret)
    identity_header = property(lambda self: self.tokens.identity_header)

    # -- test controls ----------------------------------------------------------------------------

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        enabled: bool = True,
        created: int | None = None,
        tags: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> str:
        """Add a version (the new current one) and return its id."""
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"invalid Key Vault name {name!r}")
        if len(value.encode()) > MAX_VALUE:
            raise ValueError(f"Key Vault values are at most {MAX_VALUE} bytes")
        stamp = int(time.time()) if created is None else created
        version = _Version(uuid.uuid4().hex, value, stamp, stamp, enabled, tags, content_type)
        with self._lock:
            self._secrets.setdefault(name.lower(), (name, []))[1].append(version)
        return version.id

    def set_enabled(self, name: str, version: str, enabled: bool) -> None:
        with self._lock:
            for item in self._secrets[name.lower()][1]:
                if item.id == version:
                    item.enabled = enabled
                    item.updated = int(time.time())

    def delete_secret(self, name: str) -> None:
        with self._lock:
            self._secrets.pop(name.lower(), None)

    def deny(self, name: str, *, listing_only: bool = False) -> None:
        """Answer 403 Forbidden to reads of ``name`` (the identity lacks permission), or only
        to the listing of its versions (an access policy with get but not list)."""
        with self._lock:
            (self._list_denied if listing_only else self._denied).add(name.lower())

    def inject(
        self, status: int, code: str = "Injected", *, times: int = 1, retry_after: int | None = None
    ) -> None:
        """Fail the next ``times`` authenticated vault requests with ``status``."""
        with self._lock:
            self._faults.append(_Fault(status, code, times, retry_after))

    def value_reads(self) -> list[RequestRecord]:
        """Authorized requests that read (or tried to read) a secret value."""
        return [
            r
            for r in self.requests
            if r.authorized
            and r.method == "GET"
            and r.path.startswith("/secrets/")
            and not r.path.rstrip("/").endswith("/versions")
        ]

    # -- HTTP -------------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Reply:
        parts = urlsplit(target)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if not path.startswith("/secrets"):
            with self._lock:
                self.requests.append(RequestRecord(method, path, query, False))
            return self.tokens.route(self.origin, method, path, query, headers, body)
        scheme, _, token = (headers.get("Authorization") or "").partition(" ")
        authorized = scheme.lower() == "bearer" and self.tokens.valid(token.strip())
        with self._lock:
            self.requests.append(RequestRecord(method, path, query, authorized))
        if not authorized:
            reply = _error(401, "Unauthorized", "AKV10000: Request is missing a Bearer token.")
            reply.headers["WWW-Authenticate"] = (
                f'Bearer authorization="https://login.microsoftonline.com/{self.tenant_id}", '
                f'resource="{RESOURCE}"'
            )
            return reply
        return self._vault(method, path, query, body)

    def _vault(self, method: str, path: str, query: dict[str, str], body: bytes) -> Reply:
        api = query.get("api-version")
        if api not in API_VERSIONS:
            raise _error(400, "BadParameter", f"The specified version ({api}) is not recognized.")
        self._raise_injected()
        segments = [s for s in path.split("/")[2:] if s]
        if not segments:
            if method != "GET":
                raise _error(405, "MethodNotAllowed", f"{method} is not allowed here")
            return self._page(self._list_items(), query, path)
        name = segments[0]
        if not NAME_RE.fullmatch(name):
            raise _error(400, "BadParameter", f"The request URI contains an invalid name: {name}")
        if method == "PUT" and len(segments) == 1:
            return self._put(name, body)
        if method != "GET" or len(segments) > 2:
            raise _error(405, "MethodNotAllowed", f"{method} {path} is not supported here")
        listing = segments[1:] == ["versions"]
        key = name.lower()
        with self._lock:
            denied = key in self._denied or (listing and key in self._list_denied)
        if denied:
            message = f"The application does not have secrets get/list permission on {name}."
            raise _error(403, "Forbidden", message, "AccessDenied")
        if listing:
            return self._page(self._version_items(name), query, path)
        return Reply(200, self._bundle(name, segments[1] if len(segments) == 2 else None))

    def _raise_injected(self) -> None:
        with self._lock:
            fault = self._faults[0] if self._faults else None
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.pop(0)
        if fault is not None:
            reply = _error(fault.status, fault.code, f"injected failure {fault.status}")
            if fault.retry_after is not None:
                reply.headers["Retry-After"] = str(fault.retry_after)
            raise reply

    def _put(self, name: str, body: bytes) -> Reply:
        doc = json.loads(body or b"{}")
        value = str(doc.get("value", ""))
        if len(value.encode()) > MAX_VALUE:
            raise _error(400, "BadParameter", "The secret value is larger than 25 KiB.")
        attributes = doc.get("attributes") or {}
        version = self.set_secret(
            name,
            value,
            enabled=bool(attributes.get("enabled", True)),
            tags=doc.get("tags"),
            content_type=doc.get("contentType"),
        )
        return Reply(200, self._bundle(name, version, read=False))

    def _bundle(self, name: str, version: str | None, *, read: bool = True) -> dict[str, Any]:
        with self._lock:
            entry = self._secrets.get(name.lower())
            versions = entry[1] if entry is not None else []
            if version is None:
                item = versions[-1] if versions else None
            else:
                item = next((v for v in versions if v.id == version.lower()), None)
        if entry is None or item is None:
            raise _not_found(name if version is None else f"{name}/{version}")
        if read and not item.enabled:
            message = "Operation get is not allowed on a disabled secret."
            raise _error(403, "Forbidden", message, "SecretDisabled")
        doc = self._item(entry[0], item, with_version=True)
        doc["value"] = item.value
        return doc

    def _item(self, name: str, item: _Version, *, with_version: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": f"{self.origin}/secrets/{name}" + (f"/{item.id}" if with_version else ""),
            "attributes": {
                "enabled": item.enabled,
                "created": item.created,
                "updated": item.updated,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
            "tags": item.tags or {},
        }
        if item.content_type is not None:
            doc["contentType"] = item.content_type
        return doc

    def _list_items(self) -> list[dict[str, Any]]:
        with self._lock:
            entries = sorted(self._secrets.values(), key=lambda entry: entry[0].lower())
            return [self._item(n, vs[-1], with_version=False) for n, vs in entries if vs]

    def _version_items(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            entry = self._secrets.get(name.lower())
            if entry is None or not entry[1]:
                raise _not_found(name)
            # Azure documents no order: never hand out the newest first by construction.
            items = sorted(entry[1], key=lambda v: v.id)
            return [self._item(entry[0], v, with_version=True) for v in items]

    def _page(self, items: list[dict[str, Any]], query: dict[str, str], path: str) -> Reply:
        size = max(1, min(PAGE_SIZE, int(query.get("maxresults") or PAGE_SIZE)))
        start = int(query.get("$skiptoken") or 0)
        next_link = None
        if start + size < len(items):
            params = {
                "api-version": query["api-version"],
                "$skiptoken": str(start + size),
                "maxresults": str(size),
            }
            next_link = f"{self.origin}{path}?{urlencode(params)}"
        return Reply(200, {"value": items[start : start + size], "nextLink": next_link})


@contextmanager
def running_double(directory: Path, **token_options: Any) -> Iterator[KeyVaultDouble]:
    """A started double with a fresh CA in ``directory``; stopped on exit."""
    double = KeyVaultDouble(make_tls_files(directory), **token_options).start()
    try:
        yield double
    finally:
        double.stop()


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without the TLS, proxy and Azure variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    env.update(extra)
    return env


def provider_settings(double: KeyVaultDouble, **overrides: Any) -> dict[str, Any]:
    """The azure provider's settings for the double, with the real client-secret flow
    (an override of None removes a setting)."""
    settings: dict[str, Any] = {
        "vault_url": double.vault_url,
        "credential": "client_secret",
        "tenant_id": double.tenant_id,
        "client_id": double.client_id,
        "client_secret": double.client_secret,
        "authority_host": double.origin,
        "ca_file": str(double.ca_file),
        "verify_challenge_resource": False,
    }
    settings.update(overrides)
    return {k: v for k, v in settings.items() if v is not None}
