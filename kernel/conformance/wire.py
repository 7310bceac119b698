"""Checks of requests the provider host never sends, on the raw process (protocol §4, §6, §7,
§8.2): requests before ``configure``, without a deadline, with an expired deadline, with an
unknown method or malformed params, and methods the provider did not advertise."""

from __future__ import annotations

import time
from typing import Any

from kernel.conformance.base import CheckFailed, CheckSkipped, Context, expect_error
from kernel.errors import ProtocolError
from kernel.protocol import (
    Capability,
    ErrorCode,
    Response,
    SecretRef,
    configure_params,
    deadline_params,
    refs_params,
)
from kernel.protocol.methods import parse_ping_result

#: A method name no protocol version will define.
UNKNOWN_METHOD = "dso-conformance-no-such-method"


def _call(ctx: Context, method: str, params: dict[str, Any]) -> Response:
    raw = ctx.require_raw(configured=False)
    try:
        return raw.call(method, params, timeout=ctx.request_timeout)
    except TimeoutError:
        raise CheckFailed(f"no answer to {method!r} within {ctx.request_timeout:g} s") from None
    except EOFError:
        raise CheckFailed(
            f"the provider exited while answering {method!r} (status {raw.wait(1.0)})"
        ) from None
    except ProtocolError as exc:
        raise CheckFailed(f"bad frame in answer to {method!r}: {exc.message}") from None


def _existing_ref(ctx: Context, ref_id: str = "c1") -> SecretRef:
    return ctx.fixture.small[0].ref(ref_id)


def check_before_configure(ctx: Context) -> str:
    """Before ``configure``: ``get`` is ``invalid_request``, ``ping`` is answered."""
    response = _call(ctx, "get", refs_params([_existing_ref(ctx)], ctx.deadline()))
    expect_error(response, ErrorCode.INVALID_REQUEST, "get before configure")
    ping = _call(ctx, "ping", deadline_params(ctx.deadline()))
    if ping.error is not None:
        raise CheckFailed(f"ping before configure failed: {ping.error.code.value}")
    return "get refused with invalid_request, ping answered"


def check_missing_deadline(ctx: Context) -> str:
    """A request without ``deadline`` is ``invalid_request``."""
    response = _call(ctx, "ping", {})
    message = expect_error(response, ErrorCode.INVALID_REQUEST, "ping without a deadline")
    return f"invalid_request: {message:.100}"


def check_configure(ctx: Context) -> str:
    """``configure`` with the fixture's settings succeeds."""
    response = _call(ctx, "configure", configure_params(ctx.fixture.settings, ctx.deadline()))
    if response.error is not None:
        raise CheckFailed(
            f"configure failed with {response.error.code.value}: {response.error.message:.200}"
        )
    if not isinstance(response.result, dict):
        raise CheckFailed("configure answered something other than a map")
    ctx.raw_configured = True
    return f"settings accepted ({len(ctx.fixture.settings)} keys)"


def check_unknown_method(ctx: Context) -> str:
    """An unknown method is ``invalid_request``, and the provider keeps serving."""
    ctx.require_raw()
    response = _call(ctx, UNKNOWN_METHOD, deadline_params(ctx.deadline()))
    message = expect_error(response, ErrorCode.INVALID_REQUEST, f"method {UNKNOWN_METHOD!r}")
    return f"invalid_request: {message:.100}"


#: Well-framed requests with bad params: each must be answered ``invalid_request``.
def _malformed(ctx: Context) -> list[tuple[str, str, dict[str, Any]]]:
    ref = _existing_ref(ctx).to_wire()
    deadline = ctx.deadline()
    return [
        ("refs is not an array", "get", {"refs": "not-an-array", "deadline": deadline}),
        ("refs is missing", "get", {"deadline": deadline}),
        ("a ref has no path", "get", {"refs": [{"id": "x"}], "deadline": deadline}),
        ("a ref id is not a string", "get", {"refs": [{**ref, "id": 7}], "deadline": deadline}),
        ("duplicate ref ids", "get", {"refs": [ref, ref], "deadline": deadline}),
        ("deadline is a string", "ping", {"deadline": "soon"}),
        ("settings is not a map", "configure", {"settings": [1, 2], "deadline": deadline}),
    ]


def check_malformed_request(ctx: Context) -> str:
    """Requests with params of the wrong shape are ``invalid_request``; nothing crashes."""
    ctx.require_raw()
    for what, method, params in _malformed(ctx):
        expect_error(_call(ctx, method, params), ErrorCode.INVALID_REQUEST, what)
    ping = _call(ctx, "ping", deadline_params(ctx.deadline()))
    if ping.error is not None:
        raise CheckFailed("ping failed after the malformed requests")
    return f"{len(_malformed(ctx))} malformed requests refused, still serving"


def check_expired_deadline(ctx: Context) -> str:
    """A request whose deadline already passed is answered ``timeout``, without a value."""
    ctx.require_raw()
    past = time.time() - 60
    response = _call(ctx, "get", refs_params([_existing_ref(ctx)], past))
    expect_error(response, ErrorCode.TIMEOUT, "get with a deadline 60 s in the past")
    ping = _call(ctx, "ping", deadline_params(past))
    expect_error(ping, ErrorCode.TIMEOUT, "ping with a deadline 60 s in the past")
    return "get and ping answered timeout"


def check_unadvertised(ctx: Context) -> str:
    """Methods of capabilities not in the handshake are ``invalid_request``."""
    ctx.require_raw()
    missing = [
        c
        for c in (Capability.VERSIONS, Capability.LIST, Capability.WATCH)
        if c not in ctx.capabilities
    ]
    if not missing:
        raise CheckSkipped("every optional capability is advertised")
    ref = [_existing_ref(ctx)]
    for capability in missing:
        params: dict[str, Any] = deadline_params(ctx.deadline())
        if capability is not Capability.LIST:
            params = refs_params(ref, ctx.deadline())
        response = _call(ctx, capability.value, params)
        expect_error(response, ErrorCode.INVALID_REQUEST, f"unadvertised {capability.value!r}")
    return "refused: " + ", ".join(c.value for c in missing)


def check_ping_clock(ctx: Context) -> str:
    """``ping`` answers the provider's clock (unix seconds), close to ours."""
    response = _call(ctx, "ping", deadline_params(ctx.deadline()))
    if response.error is not None:
        raise CheckFailed(f"ping failed: {response.error.code.value}")
    try:
        remote = parse_ping_result(response.result)
    except ProtocolError as exc:
        raise CheckFailed(exc.message) from None
    skew = remote - time.time()
    if abs(skew) > 5:
        raise CheckFailed(f"ping time is {skew:+.1f} s off this host's clock")
    return f"clock within {abs(skew) * 1000:.0f} ms"
