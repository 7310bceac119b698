"""A small well-behaved provider written with the SDK, for tests: secrets live in memory.

Run as ``python -m tests.fakes.echo_provider`` (or the file path) with the kernel's cookie.
Settings sent with ``configure``:

- ``secrets``: ``{path: value}`` where value is a string, or
  ``{"value": str, "version": str}``, or ``{"fields": {field: str}, "version": str}``;
  the version defaults to a digest of the value. Configuring again changes them, and sends a
  ``changed`` notification for every watched reference whose version moved.
- ``sleep``: seconds each ``get``/``versions`` reference sleeps (deadline/concurrency tests).
- ``errors``: ``{path: wire code}``: that path fails with that code.
- ``crash_message``: text of the RuntimeError the path ``crash`` raises; it must never reach
  the kernel (the SDK answers ``internal`` with a generic message).

``get`` also ``print()``s on purpose: the SDK's stdout protection must route it to stderr.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from providers.sdk import (
    InvalidRequest,
    Provider,
    SecretData,
    SecretNotFound,
    SecretRef,
    fault_for,
    get_logger,
    serve,
)

log = get_logger("echo")


class _Entry:
    __slots__ = ("fields", "value", "version")

    def __init__(self, value: bytes | None, fields: dict[str, bytes], version: str) -> None:
        self.value = value
        self.fields = fields
        self.version = version


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def _entry(path: str, spec: Any) -> _Entry:
    if isinstance(spec, str | bytes):
        value = spec.encode() if isinstance(spec, str) else spec
        return _Entry(value, {}, _digest(value))
    if not isinstance(spec, dict):
        raise InvalidRequest(f"secrets.{path}: expected a string or a map")
    if "fields" in spec:
        fields = {k: str(v).encode() for k, v in dict(spec["fields"]).items()}
        version = spec.get("version") or _digest(repr(sorted(fields.items())).encode())
        return _Entry(None, fields, str(version))
    raw = spec.get("value", "")
    value = raw.encode() if isinstance(raw, str) else bytes(raw)
    return _Entry(value, {}, str(spec.get("version") or _digest(value)))


class EchoProvider(Provider):
    """In-memory secrets from the ``configure`` settings."""

    name = "echo"
    version = "1.0.0"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, _Entry] = {}
        self._errors: dict[str, str] = {}
        self._watched: dict[str, str] = {}
        self._sleep = 0.0
        self._crash_message = "echo provider crashed"

    def configure(self, settings: Mapping[str, Any]) -> None:
        secrets = settings.get("secrets", {})
        if not isinstance(secrets, dict):
            raise InvalidRequest("settings.secrets must be a map")
        entries = {str(path): _entry(str(path), spec) for path, spec in secrets.items()}
        with self._lock:
            old = self._secrets
            self._secrets = entries
            self._errors = {str(k): str(v) for k, v in dict(settings.get("errors", {})).items()}
            self._sleep = float(settings.get("sleep", 0.0))
            self._crash_message = str(settings.get("crash_message", self._crash_message))
            changed = [
                ref_id
                for ref_id, path in self._watched.items()
                if _version(old.get(path)) != _version(entries.get(path))
            ]
        log.info("configured", extra={"secrets": len(entries)})
        if changed:
            self.notify_changed(refs=changed)

    def _lookup(self, ref: SecretRef) -> _Entry:
        with self._lock:
            sleep = self._sleep
            code = self._errors.get(ref.path)
            entry = self._secrets.get(ref.path)
            crash = self._crash_message
        if sleep:
            time.sleep(sleep)
        if ref.path == "crash":
            raise RuntimeError(crash)
        if code is not None:
            raise fault_for(code, f"{ref.path}: configured to fail with {code}")
        if entry is None:
            raise SecretNotFound(f"no secret at {ref.path!r}")
        if ref.version is not None and ref.version != entry.version:
            raise SecretNotFound(f"{ref.path!r} has no version {ref.version!r}")
        return entry

    def get_secret(self, ref: SecretRef) -> SecretData:
        print("echo provider: a stray print in get (must land on stderr)", ref.path)
        entry = self._lookup(ref)
        if ref.field is not None:
            if ref.field not in entry.fields:
                raise SecretNotFound(f"{ref.path!r} has no field {ref.field!r}")
            return SecretData(entry.fields[ref.field], entry.version)
        if entry.value is None:
            raise InvalidRequest(f"{ref.path!r} has fields: name one")
        return SecretData(entry.value, entry.version)

    def get_version(self, ref: SecretRef) -> str:
        return self._lookup(ref).version

    def list_names(self, prefix: str | None) -> list[str]:
        with self._lock:
            names = sorted(self._secrets)
        return [n for n in names if prefix is None or n.startswith(prefix)]

    def watch(self, refs: Sequence[SecretRef]) -> None:
        with self._lock:
            self._watched = {ref.id: ref.path for ref in refs}


def _version(entry: _Entry | None) -> str | None:
    return None if entry is None else entry.version


if __name__ == "__main__":
    serve(EchoProvider)
