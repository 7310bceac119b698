"""The pieces every conformance check shares: the run context and how a check reports.

A check is a function ``(ctx) -> str``: it returns a one-line detail when the provider passes,
raises :class:`CheckFailed` with what was expected and what happened, or :class:`CheckSkipped`
when it does not apply. Details never contain secret values: compare, then describe sizes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel.conformance.fixture import Fixture
from kernel.protocol import (
    DEFAULT_REQUEST_TIMEOUT,
    START_TIMEOUT,
    Capability,
    Handshake,
    Response,
)

if TYPE_CHECKING:
    from kernel.conformance.raw import RawProvider
    from kernel.provider_host import ProviderClient, ProviderCommand


class CheckFailed(Exception):
    """The provider broke the rule the check verifies; the message says how."""


class CheckSkipped(Exception):
    """The check does not apply to this provider or fixture; the message says why."""


@dataclass
class Context:
    """State shared by the checks of one run, in order: later checks use what earlier found."""

    command: ProviderCommand
    fixture: Fixture
    environ: Mapping[str, str]
    start_timeout: float = START_TIMEOUT
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    #: ``--describe`` output, once the describe check ran.
    describe: dict[str, Any] | None = None
    #: The handshake the raw session received.
    handshake: Handshake | None = None
    #: The process driven frame by frame (handshake, error and stop checks).
    raw: RawProvider | None = None
    raw_configured: bool = False
    #: The provider host's client (method, pipelining and shutdown checks).
    client: ProviderClient | None = None
    client_configured: bool = False
    #: Version id ``get`` returned per fixture secret label.
    versions: dict[str, str] = field(default_factory=dict)

    def deadline(self, seconds: float | None = None) -> float:
        """An absolute deadline ``seconds`` (default: the request timeout) from now."""
        return time.time() + (self.request_timeout if seconds is None else seconds)

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What the provider announced, from whichever session has seen its handshake."""
        if self.handshake is not None:
            return self.handshake.capabilities
        if self.client is not None:
            return self.client.handshake.capabilities
        return frozenset()

    def require_raw(self, *, configured: bool = True) -> RawProvider:
        if self.raw is None:
            raise CheckSkipped("needs the raw session, which did not start (see 'handshake')")
        if configured and not self.raw_configured:
            raise CheckSkipped("needs a configured provider (see 'configure')")
        return self.raw

    def require_client(self) -> ProviderClient:
        if self.client is None:
            raise CheckSkipped("needs the provider running under the host (see 'host-start')")
        if not self.client_configured:
            raise CheckSkipped("needs a configured provider (see 'configure')")
        return self.client

    def require_capability(self, capability: Capability) -> None:
        if capability not in self.capabilities:
            raise CheckSkipped(f"the provider does not advertise {capability.value!r}")


@dataclass(frozen=True, slots=True)
class Check:
    """One entry of the suite: a stable name, the protocol section, the function, and the
    checks whose state it builds on (run first when only some checks are asked for)."""

    name: str
    section: str
    summary: str
    run: Callable[[Context], str]
    needs: tuple[str, ...] = ()


def expect_error(response: Response, code: str, what: str) -> str:
    """Pass if ``response`` is an error with ``code``; returns the message for the detail."""
    if response.error is None:
        raise CheckFailed(f"{what}: expected error {code!r}, got a result")
    if response.error.code.value != code:
        raise CheckFailed(
            f"{what}: expected error {code!r}, got {response.error.code.value!r}"
            f" ({response.error.message:.160})"
        )
    return response.error.message


def ms(seconds: float) -> str:
    """``12 ms`` / ``1.25 s``: durations in details."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
