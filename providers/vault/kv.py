"""Reading the KV secrets engine (v1 and v2) over hvac's HTTP adapter.

The adapter is used directly, rather than hvac's ``secrets.kv`` helpers, so that every call is
bounded by the request's deadline (``timeout=time_left()``); the helpers take no timeout.

- KV v2: ``GET <mount>/data/<path>[?version=N]`` for values; ``GET <mount>/metadata/<path>``
  for the cheap change check (``current_version``, no values).
- KV v1: ``GET <mount>/<path>``. KV v1 keeps no versions and no metadata, so the version id is
  a fingerprint of the data: HMAC-SHA-256 keyed with ``fingerprint_secret`` (or a built-in key)
  over mount, path and the canonical JSON of the data, cut to 16 hex digits. ``versions`` must
  then read the value (there is nothing cheaper), but returns only the fingerprint.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import hvac

from providers.sdk import InternalFault, InvalidRequest, SecretNotFound, time_left
from providers.vault.errors import translate

#: Longest single HTTP call, even when the request's deadline is further away.
MAX_CALL_TIMEOUT = 30.0
#: ``list`` stops after this many names (it walks folders recursively).
MAX_LIST_NAMES = 10_000
#: A KV v2 timestamp: seconds, an optional fraction (Vault writes nanoseconds), a zone.
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|z|[+-]\d\d:\d\d)?")
#: Key of the KV v1 fingerprint when the settings give none.
DEFAULT_FINGERPRINT_KEY = b"dso vault provider: KV v1 version fingerprint"


@dataclass(frozen=True, slots=True)
class KVSecret:
    """One read: the KV data (a JSON object) and its version id."""

    data: dict[str, Any] = field(repr=False)
    version: str


def check_path(path: str) -> str:
    """``path`` if it is a plain relative KV path; no empty, ``.`` or ``..`` segments."""
    if path.startswith("/") or path.endswith("/"):
        raise InvalidRequest(f"{path!r:.200}: a KV path has no leading or trailing '/'")
    if any(seg in ("", ".", "..") for seg in path.split("/")):
        raise InvalidRequest(f"{path!r:.200}: empty, '.' and '..' segments are not allowed")
    return path


class KV:
    """One KV mount: read a secret, its current version, or list names."""

    def __init__(
        self,
        client: hvac.Client,
        mount: str,
        kv_version: int,
        fingerprint_key: bytes | None = None,
    ) -> None:
        self.client = client
        self.mount = mount
        self.kv_version = kv_version
        self._key = fingerprint_key or DEFAULT_FINGERPRINT_KEY

    # -- addressing -----------------------------------------------------------------------------

    def relative(self, path: str) -> str:
        """The path under the mount. ``<mount>/data/<path>`` (the KV v2 API path, as Vault's
        own docs write it) is accepted too and means ``<path>``."""
        full_prefix = f"{self.mount}/data/"
        if self.kv_version == 2 and path.startswith(full_prefix) and len(path) > len(full_prefix):
            path = path[len(full_prefix) :]
        return check_path(path)

    def where(self, path: str) -> str:
        """How messages name a secret: ``'secret/app/db'``."""
        return repr(f"{self.mount}/{path}")

    def _url(self, kind: str | None, path: str) -> str:
        parts = [self.mount] if kind is None else [self.mount, kind]
        if path:
            parts.append(path)
        return "/v1/" + quote("/".join(parts), safe="/")

    def _call(self, method: str, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        timeout = min(time_left(MAX_CALL_TIMEOUT), MAX_CALL_TIMEOUT)
        adapter = self.client.adapter
        if method == "list":
            answer = adapter.list(url, timeout=timeout)
        else:
            answer = adapter.get(url, params=params, timeout=timeout)
        if not isinstance(answer, dict):
            # 204 No Content or a non-JSON body: Vault answers JSON for every KV read.
            raise InternalFault(f"{url}: unexpected non-JSON answer from Vault")
        return answer

    # -- reads ----------------------------------------------------------------------------------

    def read(self, path: str, pinned: str | None) -> KVSecret:
        """The data and version id of ``path`` (at version ``pinned`` if given)."""
        if self.kv_version == 1:
            data = _object(self._call("get", self._url(None, path)).get("data"), self.where(path))
            version = self.fingerprint(path, data)
            if pinned is not None and pinned != version:
                raise SecretNotFound(
                    f"{self.where(path)} has no version {pinned!r}: KV v1 keeps only the current"
                    " value, whose version id is a fingerprint"
                )
            return KVSecret(data, version)
        params: dict[str, Any] | None = None
        if pinned is not None:
            params = {"version": _version_number(pinned, self.where(path))}
        body = self._call("get", self._url("data", path), params).get("data")
        doc = _object(body, self.where(path))
        payload = doc.get("data")
        metadata = doc.get("metadata")
        if payload is None:  # deleted/destroyed versions come back as 404, but be safe
            raise SecretNotFound(f"{self.where(path)}: this version is deleted or destroyed")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("version"), int):
            raise InternalFault(f"{self.where(path)}: Vault's answer has no version number")
        return KVSecret(_object(payload, self.where(path)), str(metadata["version"]))

    def version(self, path: str, pinned: str | None) -> str:
        """The version id without the value: KV v2 metadata; KV v1 reads and fingerprints."""
        if self.kv_version == 1:
            return self.read(path, pinned).version
        body = self._call("get", self._url("metadata", path)).get("data")
        meta = _object(body, self.where(path))
        versions = meta.get("versions") or {}
        wanted = pinned if pinned is not None else str(meta.get("current_version") or "")
        if pinned is not None:
            _version_number(pinned, self.where(path))
        info = versions.get(wanted) if isinstance(versions, dict) else None
        if not wanted or wanted == "0" or not isinstance(info, dict):
            raise SecretNotFound(f"{self.where(path)} has no version {wanted or 'at all'}")
        if info.get("destroyed") or _is_past(info.get("deletion_time")):
            raise SecretNotFound(f"{self.where(path)}: version {wanted} is deleted or destroyed")
        return wanted

    def fingerprint(self, path: str, data: dict[str, Any]) -> str:
        """The KV v1 version id of ``data`` at ``path`` (see the module doc)."""
        canonical = json.dumps(
            [self.mount, path, data], sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8", "surrogatepass")
        return "fp-" + hmac.new(self._key, canonical, hashlib.sha256).hexdigest()[:16]

    # -- list -----------------------------------------------------------------------------------

    def names(self, prefix: str | None) -> list[str]:
        """Secret paths under ``prefix`` (a string prefix), walking folders recursively."""
        text = (prefix or "").lstrip("/")
        folder = text[: text.rfind("/") + 1] if "/" in text else ""
        kind = "metadata" if self.kv_version == 2 else None
        names: list[str] = []
        pending = [folder]
        while pending and len(names) < MAX_LIST_NAMES:
            current = pending.pop()
            for key in self._list_folder(kind, current):
                full = current + key
                if not full.startswith(text) and not text.startswith(full):
                    continue
                if key.endswith("/"):
                    pending.append(full)
                elif full.startswith(text):
                    names.append(full)
        return sorted(names)[:MAX_LIST_NAMES]

    def _list_folder(self, kind: str | None, folder: str) -> list[str]:
        try:
            with translate(f"list {self.where(folder)}"):
                answer = self._call("list", self._url(kind, folder.rstrip("/")))
        except SecretNotFound:
            return []  # Vault answers 404 for an empty or missing folder
        keys = (answer.get("data") or {}).get("keys") or []
        return [k for k in keys if isinstance(k, str) and k and check_listed(k)]


def check_listed(key: str) -> bool:
    """Skip listed keys that could escape the folder (Vault never returns them; be safe)."""
    return not any(seg in (".", "..") for seg in key.rstrip("/").split("/"))


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InternalFault(f"{where}: Vault's answer is not a JSON object where one was expected")
    return value


def _version_number(pinned: str, where: str) -> int:
    if pinned.isascii() and pinned.isdigit() and int(pinned) > 0:
        return int(pinned)
    raise SecretNotFound(f"{where} has no version {pinned!r}: KV v2 versions are numbers 1, 2, …")


def _is_past(stamp: Any) -> bool:
    """True for a KV v2 ``deletion_time`` that has passed (RFC 3339, nanoseconds allowed)."""
    if not isinstance(stamp, str) or not stamp:
        return False
    match = _RFC3339.fullmatch(stamp)
    if match is None:
        return True  # unparseable: Vault sets it only when a deletion happened or is planned
    seconds, fraction, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z", "z") else zone
    when = datetime.fromisoformat(f"{seconds}{(fraction or '.0')[:7]}{zone}")
    return when <= datetime.now(UTC)
