"""What the conformance kit may assume about a provider's back end: the fixture.

The kit cannot create secrets in an arbitrary back end, so the caller names secrets that exist
(with their expected values, or a SHA-256 and size for large ones), one path that does not
exist, the ``configure`` settings, and optionally a way to change a secret (for ``watch``).
The JSON form (``--fixture FILE``) is documented in docs/provider-protocol.md, "Conformance kit".
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel.errors import ConfigError
from kernel.protocol import SecretRef

if TYPE_CHECKING:
    from kernel.provider_host import ProviderClient

#: Changes the secret at :attr:`Fixture.change_path` in the back end; gets the kit's client
#: (some providers are changed through ``configure``, others out of band).
Mutator = Callable[["ProviderClient"], None]

#: Values at least this large exercise the ``large-value`` check.
LARGE_VALUE = 512 * 1024


@dataclass(frozen=True, slots=True)
class ExpectedSecret:
    """A reference that exists, and what its value must be (bytes, or SHA-256 and size)."""

    path: str
    field: str | None = None
    value: bytes | None = dataclasses.field(default=None, repr=False)
    sha256: str | None = None
    size: int | None = None

    def ref(self, ref_id: str) -> SecretRef:
        return SecretRef(ref_id, self.path, self.field)

    @property
    def label(self) -> str:
        """How messages name it: ``path`` or ``path#field`` (never the value)."""
        return self.path if self.field is None else f"{self.path}#{self.field}"

    @property
    def expected_size(self) -> int | None:
        return len(self.value) if self.value is not None else self.size

    def mismatch(self, data: bytes) -> str | None:
        """Why ``data`` is not the expected value (sizes and digests only), or None."""
        if self.value is not None:
            if data == self.value:
                return None
            return f"{self.label}: got {len(data)} bytes, expected {len(self.value)} other bytes"
        if self.size is not None and len(data) != self.size:
            return f"{self.label}: got {len(data)} bytes, expected {self.size}"
        if self.sha256 is not None and hashlib.sha256(data).hexdigest() != self.sha256.lower():
            return f"{self.label}: the SHA-256 of the {len(data)} bytes received differs"
        return None


@dataclass(frozen=True, slots=True)
class Fixture:
    """Settings and known secrets of the back end the provider under test talks to."""

    settings: Mapping[str, Any]
    secrets: tuple[ExpectedSecret, ...]
    #: A path that names nothing in the back end.
    missing: str
    #: Variables of the caller's environment passed to the provider (credentials).
    env_allow: tuple[str, ...] = ()
    #: Changes the secret at ``change_path``; without it ``watch`` is checked without a change.
    mutate: Mutator | None = None
    change_path: str | None = None
    #: Seconds a ``changed`` notification may take after ``mutate`` returns.
    change_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.secrets:
            raise ValueError("a fixture needs at least one existing secret")

    @property
    def large(self) -> ExpectedSecret | None:
        """The largest secret if it is at least :data:`LARGE_VALUE` bytes."""
        sized = [s for s in self.secrets if (s.expected_size or 0) >= LARGE_VALUE]
        return max(sized, key=lambda s: s.expected_size or 0) if sized else None

    @property
    def small(self) -> Sequence[ExpectedSecret]:
        """Secrets below :data:`LARGE_VALUE` (used for the bulk checks)."""
        small = [s for s in self.secrets if (s.expected_size or 0) < LARGE_VALUE]
        return small or list(self.secrets)


def load_fixture(path: Path) -> Fixture:
    """Read a JSON fixture file; raises :class:`ConfigError` naming the file and key."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the fixture: {exc.strerror}", path=path) from None
    except ValueError as exc:
        raise ConfigError(f"the fixture is not valid JSON: {exc}", path=path) from None
    return parse_fixture(doc, path)


def parse_fixture(doc: Any, path: Path) -> Fixture:
    """Validate a decoded fixture document (see :func:`load_fixture`)."""

    def bad(key: str, message: str) -> ConfigError:
        return ConfigError(message, path=path, key=key)

    if not isinstance(doc, dict):
        raise bad("(top level)", "the fixture must be a JSON object")
    unknown = set(doc) - {"settings", "env", "secrets", "missing", "change"}
    if unknown:
        raise bad(min(unknown), "unknown key (expected settings, env, secrets, missing, change)")
    settings = doc.get("settings", {})
    if not isinstance(settings, dict):
        raise bad("settings", "must be an object: the provider's configure settings")
    env = doc.get("env", [])
    if not isinstance(env, list) or not all(isinstance(n, str) and n for n in env):
        raise bad("env", "must be an array of environment variable names")
    raw_secrets = doc.get("secrets")
    if not isinstance(raw_secrets, list) or not raw_secrets:
        raise bad("secrets", "must be a non-empty array of {path, field?, value...}")
    secrets = tuple(_secret(item, f"secrets[{i}]", bad) for i, item in enumerate(raw_secrets))
    missing = doc.get("missing")
    if isinstance(missing, dict):
        missing = missing.get("path")
    if not isinstance(missing, str) or not missing:
        raise bad("missing", 'must name a path that does not exist: {"path": "..."}')
    mutate, change_path, change_timeout = _change(doc.get("change"), path, bad)
    return Fixture(settings, secrets, missing, tuple(env), mutate, change_path, change_timeout)


def _secret(item: Any, key: str, bad: Callable[[str, str], ConfigError]) -> ExpectedSecret:
    if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not item["path"]:
        raise bad(key, "must be an object with a non-empty 'path'")
    field_ = item.get("field")
    if field_ is not None and (not isinstance(field_, str) or not field_):
        raise bad(f"{key}.field", "must be a non-empty string")
    given = [k for k in ("value", "value_base64", "sha256") if k in item]
    if len(given) != 1:
        raise bad(key, "needs exactly one of 'value', 'value_base64' or 'sha256' (with 'size')")
    if "value" in item:
        if not isinstance(item["value"], str):
            raise bad(f"{key}.value", "must be a string (use value_base64 for bytes)")
        return ExpectedSecret(item["path"], field_, item["value"].encode("utf-8"))
    if "value_base64" in item:
        try:
            value = base64.b64decode(str(item["value_base64"]), validate=True)
        except (binascii.Error, ValueError):
            raise bad(f"{key}.value_base64", "is not valid base64") from None
        return ExpectedSecret(item["path"], field_, value)
    digest, size = item["sha256"], item.get("size")
    if not isinstance(digest, str) or len(digest) != 64:
        raise bad(f"{key}.sha256", "must be 64 hex digits")
    if type(size) is not int or size < 0:
        raise bad(f"{key}.size", "must be the value's length in bytes")
    return ExpectedSecret(item["path"], field_, None, digest, size)


def _change(
    change: Any, path: Path, bad: Callable[[str, str], ConfigError]
) -> tuple[Mutator | None, str | None, float]:
    """``{"path": ..., "command": [argv...], "timeout": s}``: a command that changes a secret."""
    if change is None:
        return None, None, 10.0
    if not isinstance(change, dict):
        raise bad("change", "must be an object {path, command, timeout?}")
    target, argv = change.get("path"), change.get("command")
    if not isinstance(target, str) or not target:
        raise bad("change.path", "must name the secret the command changes")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise bad("change.command", "must be a non-empty array: the program and its arguments")
    timeout = change.get("timeout", 10.0)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        raise bad("change.timeout", "must be a positive number of seconds")
    command = tuple(argv)
    workdir = path.parent

    def run_command(client: ProviderClient) -> None:
        import subprocess

        # Output is captured, so `--json` on stdout stays clean; the exit status is checked.
        subprocess.run(
            command,
            cwd=workdir,
            check=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
            capture_output=True,
        )

    return run_command, target, float(timeout)
