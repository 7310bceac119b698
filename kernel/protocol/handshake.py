"""Launch contract and handshake: environment, magic cookie, version negotiation, ``--describe``.

The kernel execs a provider with a filtered environment (:func:`provider_environment`) holding
:data:`MAGIC_COOKIE_KEY` and the protocol versions it offers. The provider's first frame is a
``handshake`` notification (:class:`Handshake`) choosing the highest common version
(:func:`negotiate`). The cookie is not a secret: it stops a person running a provider by hand
from staring at a silent program, and lets the kernel reject a program that is not a provider.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kernel import __version__
from kernel.errors import ProtocolError
from kernel.protocol.messages import (
    Message,
    Method,
    Notification,
    expect_map,
    expect_str,
    fail,
    type_name,
)

#: Environment variable carrying the magic cookie, and its one valid value.
MAGIC_COOKIE_KEY = "DSO_PROVIDER_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "dso-provider:09e68b7faafef46dea06992037bf5d3b"
#: Environment variable with the protocol versions the kernel offers, comma-separated: ``1``.
PROTOCOL_VERSIONS_KEY = "DSO_PROVIDER_PROTOCOL_VERSIONS"
#: Environment variable with the log level the provider should use (debug/info/warning/error).
LOG_LEVEL_KEY = "DSO_PROVIDER_LOG_LEVEL"

#: The protocol this package implements, and every version it can speak.
PROTOCOL_VERSION = 1
SUPPORTED_PROTOCOLS: tuple[int, ...] = (1,)

#: The kernel/SDK release, sent as ``core_version`` in the handshake.
CORE_VERSION = __version__

#: Seconds from exec to a valid handshake before the kernel declares a start failure.
START_TIMEOUT = 5.0
#: Seconds the kernel waits after ``shutdown`` (then after SIGTERM) before it kills.
SHUTDOWN_TIMEOUT = 2.0
#: Default per-request timeout when the provider's configuration sets none.
DEFAULT_REQUEST_TIMEOUT = 10.0

#: Executable name of a frozen provider, and module prefix of one run from source.
EXECUTABLE_PREFIX = "dso-provider-"
SOURCE_MODULE_PREFIX = "providers."

#: Variables passed from the kernel's environment to every provider, when set. Anything else
#: (credentials included) must be listed in the provider's ``env`` setting in dso.yaml.
BASE_ENV_ALLOWLIST: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "AWS_CA_BUNDLE",
)

#: Provider names: what follows ``dso-provider-`` and names the provider in dso.yaml.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}")


class Capability(StrEnum):
    """What a provider announces it can do. ``get`` is mandatory."""

    #: ``get``: fetch values (every provider).
    GET = "get"
    #: ``versions``: version ids without values, for cheap change checks.
    VERSIONS = "versions"
    #: ``watch``: push ``changed`` notifications.
    WATCH = "watch"
    #: ``list``: enumerate names under a prefix.
    LIST = "list"


CAPABILITIES: frozenset[str] = frozenset(c.value for c in Capability)


def parse_versions(value: str | None) -> tuple[int, ...]:
    """Versions from :data:`PROTOCOL_VERSIONS_KEY` (``"1"``, ``"1,2"``); raises if malformed."""
    if not value or not value.strip():
        raise ProtocolError(f"{PROTOCOL_VERSIONS_KEY} is missing or empty")
    versions: list[int] = []
    for part in value.split(","):
        part = part.strip()
        if not part.isdigit() or not 0 < int(part) < 2**16:
            raise ProtocolError(f"{PROTOCOL_VERSIONS_KEY} has a bad entry {part!r:.20}")
        versions.append(int(part))
    return tuple(versions)


def format_versions(versions: Iterable[int]) -> str:
    """The value for :data:`PROTOCOL_VERSIONS_KEY`."""
    return ",".join(str(v) for v in sorted(set(versions)))


def negotiate(offered: Iterable[int], supported: Iterable[int] = SUPPORTED_PROTOCOLS) -> int | None:
    """The highest version both sides speak, or None when they share none."""
    common = set(offered) & set(supported)
    return max(common) if common else None


def provider_environment(
    parent: Mapping[str, str],
    allowed: Iterable[str] = (),
    *,
    protocols: Iterable[int] = SUPPORTED_PROTOCOLS,
    log_level: str | None = None,
) -> dict[str, str]:
    """The whole environment a provider is exec'd with: the base allow-list plus ``allowed``
    (the provider's configured ``env`` names), taken from ``parent`` when set, plus the
    protocol variables. Never the kernel's whole environment."""
    env = {key: parent[key] for key in (*BASE_ENV_ALLOWLIST, *allowed) if key in parent}
    env[MAGIC_COOKIE_KEY] = MAGIC_COOKIE_VALUE
    env[PROTOCOL_VERSIONS_KEY] = format_versions(protocols)
    if log_level is not None:
        env[LOG_LEVEL_KEY] = log_level
    return env


@dataclass(frozen=True, slots=True)
class Handshake:
    """The provider's first frame: a ``handshake`` notification with these params."""

    name: str
    version: str
    protocol: int
    capabilities: frozenset[Capability]
    core_version: str = CORE_VERSION
    cookie: str = MAGIC_COOKIE_VALUE

    def to_params(self) -> dict[str, Any]:
        return {
            "cookie": self.cookie,
            "core_version": self.core_version,
            "protocol": self.protocol,
            "name": self.name,
            "version": self.version,
            "capabilities": sorted(c.value for c in self.capabilities),
        }

    def to_notification(self) -> Notification:
        return Notification(Method.HANDSHAKE, self.to_params())

    @classmethod
    def from_message(
        cls, message: Message, offered: Sequence[int] = SUPPORTED_PROTOCOLS
    ) -> Handshake:
        """Validate the first message from a provider against the versions the kernel offered.

        Raises :class:`ProtocolError` with a message fit for the user (wrong cookie, version
        mismatch, missing field). Unknown capability names are ignored.
        """
        if not isinstance(message, Notification) or message.method != Method.HANDSHAKE:
            what = type(message).__name__.lower()
            name = getattr(message, "method", None)
            fail(f"first message must be a handshake notification, got {what} {name!r:.40}")
        params = message.params
        if params.get("cookie") != MAGIC_COOKIE_VALUE:
            fail(
                "handshake has a wrong or missing magic cookie:"
                " this program is not a dso provider, or not one for this protocol"
            )
        name = expect_str(params.get("name"), "handshake.name", max_len=63)
        if not NAME_PATTERN.fullmatch(name):
            fail(f"handshake.name {name!r} is not a valid provider name ([a-z][a-z0-9_-]*)")
        version = expect_str(params.get("version"), "handshake.version", max_len=128)
        core = expect_str(params.get("core_version"), "handshake.core_version", max_len=128)
        protocol = params.get("protocol")
        if type(protocol) is not int:
            fail(f"handshake.protocol must be an int, got {type_name(protocol)}")
        if protocol not in offered:
            fail(
                f"provider {name!r} chose protocol {protocol}, but this dso offers"
                f" {format_versions(offered)}; install a provider built for protocol"
                f" {max(offered)} or upgrade dso"
            )
        caps = params.get("capabilities")
        if type(caps) is not list or not all(type(c) is str for c in caps):
            fail("handshake.capabilities must be an array of strings")
        known = frozenset(Capability(c) for c in caps if c in CAPABILITIES)
        if Capability.GET not in known:
            fail("handshake.capabilities must include 'get'")
        return cls(name, version, protocol, known, core, MAGIC_COOKIE_VALUE)


def describe_document(
    name: str,
    version: str,
    capabilities: Iterable[Capability | str],
    *,
    protocols: Iterable[int] = SUPPORTED_PROTOCOLS,
    core_version: str = CORE_VERSION,
) -> dict[str, Any]:
    """What ``<provider> --describe`` prints as JSON (no cookie needed, no handshake)."""
    return {
        "name": name,
        "version": version,
        "protocol_versions": sorted(set(protocols)),
        "capabilities": sorted({str(c) for c in capabilities}),
        "core_version": core_version,
    }


def parse_describe(text: str | bytes) -> dict[str, Any]:
    """Validate ``--describe`` output; raises :class:`ProtocolError` naming the defect."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"--describe did not print JSON: {exc}") from None
    doc = expect_map(doc, "--describe output")
    name = expect_str(doc.get("name"), "describe.name", max_len=63)
    if not NAME_PATTERN.fullmatch(name):
        fail(f"describe.name {name!r} is not a valid provider name")
    expect_str(doc.get("version"), "describe.version", max_len=128)
    versions = doc.get("protocol_versions")
    if type(versions) is not list or not versions or not all(type(v) is int for v in versions):
        fail("describe.protocol_versions must be a non-empty array of ints")
    caps = doc.get("capabilities")
    if type(caps) is not list or not all(type(c) is str for c in caps):
        fail("describe.capabilities must be an array of strings")
    return doc


def refusal_message(program: str, name: str) -> str:
    """What a provider prints on stderr when run by hand (no cookie), before exiting 1."""
    return (
        f"{program}: this is the dso provider {name!r}, not a program to run by hand.\n"
        "dso starts it by itself and talks to it over stdin/stdout; it fetches secrets for\n"
        "`docker dso` and the dso agent. Configure it under `providers:` in dso.yaml, and see\n"
        "what dso found with:\n"
        "\n"
        "    docker dso providers list\n"
        "\n"
        f"`{program} --describe` prints its name, version and capabilities as JSON.\n"
    )
