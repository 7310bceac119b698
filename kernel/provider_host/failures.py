"""The errors a provider client reports: each names the provider, what it was doing and why.

Kept together so the user-visible wording of every provider failure can be read (and tested)
in one place. None of them carries a secret value: only method names, exit statuses, timeouts
and the provider's own (cleaned) log line.
"""

from __future__ import annotations

import copy

from kernel.errors import ProtocolError, ProviderError, ProviderStartError, ProviderTimeoutError
from kernel.provider_host.process import describe_status


def handshake_timeout(name: str, start_timeout: float) -> ProviderStartError:
    return ProviderStartError(
        f"did not complete the handshake within {start_timeout:.1f} s",
        provider=name,
        hint=f"is it a dso provider? `docker dso providers check {name}` shows its log",
    )


def bad_handshake(name: str, violation: ProtocolError) -> ProviderStartError:
    reason = violation.message
    return ProviderStartError(
        reason if reason.startswith("handshake") else f"bad handshake: {reason}",
        provider=name,
        hint="the program is not a dso provider for this dso version",
    )


def protocol_violation(name: str, violation: ProtocolError) -> ProtocolError:
    return ProtocolError(f"broke the protocol: {violation.message}; it was killed", provider=name)


def stopped(name: str) -> ProviderError:
    return ProviderError("was stopped", provider=name, code="unavailable")


def exited(name: str, status: int, *, handshaken: bool, tail: list[str]) -> ProviderError:
    """The process ended on its own (a crash, or a refusal before the handshake)."""
    what = describe_status(status)
    if not handshaken:
        last = f"; its last log line: {tail[-1][:300]}" if tail else ""
        return ProviderStartError(f"{what} before completing the handshake{last}", provider=name)
    return ProviderError(
        what,
        provider=name,
        code="internal",
        hint=f"its log lines (logger dso.provider.{name}) say why; dso restarts it",
    )


def in_progress(
    name: str, method: str, failure: ProviderError, status: int | None
) -> ProviderError:
    """What a request that was in flight when the process ended fails with."""
    if isinstance(failure, ProtocolError | ProviderStartError) or failure.code == "unavailable":
        return copy.copy(failure)
    return ProviderError(
        f"{describe_status(status)} while {method!r} was in progress",
        provider=name,
        code=failure.code,
        hint=failure.hint,
    )


def not_running(name: str, method: str, failure: ProviderError | None) -> ProviderError:
    """What a request sent after the process ended fails with."""
    reason = failure.message if failure is not None else "it is gone"
    prefix = f"provider {name!r}: "
    reason = reason[len(prefix) :] if reason.startswith(prefix) else reason
    return ProviderError(
        f"is not running, cannot send {method!r} ({reason})", provider=name, code="unavailable"
    )


def timed_out(name: str, method: str, timeout: float) -> ProviderTimeoutError:
    """The kernel-side deadline of a request passed."""
    return ProviderTimeoutError(
        f"{method!r} did not answer within {timeout:g} s",
        provider=name,
        code="timeout",
        hint="the back end is slow or the provider hangs; raise the provider's `timeout`"
        " in dso.yaml if this persists",
    )
