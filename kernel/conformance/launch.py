"""Checks of how a provider starts and stops (protocol §2, §5, §8.3), on raw processes."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

from kernel.conformance.base import CheckFailed, CheckSkipped, Context, ms
from kernel.conformance.raw import RawProvider
from kernel.errors import ProtocolError
from kernel.protocol import (
    MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE,
    SHUTDOWN_TIMEOUT,
    SUPPORTED_PROTOCOLS,
    Capability,
    Handshake,
    Method,
    Notification,
    parse_describe,
)

#: Seconds ``--describe`` and the no-cookie refusal may take (a cold frozen binary is slow).
RUN_TIMEOUT = 10.0
_KNOWN_CAPABILITIES = frozenset(c.value for c in Capability)


def _env(ctx: Context, *, cookie: bool = True) -> dict[str, str]:
    env = ctx.command.environment(ctx.environ)
    if not cookie:
        env.pop(MAGIC_COOKIE_KEY, None)
    return env


def _run(
    ctx: Context, args: list[str], *, cookie: bool, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            [*ctx.command.argv, *args],
            env=_env(ctx, cookie=cookie),
            input=stdin,
            capture_output=True,
            timeout=RUN_TIMEOUT,
            check=False,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"still running after {RUN_TIMEOUT:g} s") from None
    except OSError as exc:
        raise CheckFailed(f"cannot execute {ctx.command.argv[0]}: {exc.strerror}") from None


def check_describe(ctx: Context) -> str:
    """``--describe`` prints one JSON object and exits 0, without the cookie."""
    done = _run(ctx, ["--describe"], cookie=False)
    if done.returncode != 0:
        raise CheckFailed(f"--describe exited {done.returncode}, expected 0")
    try:
        ctx.describe = parse_describe(done.stdout)
    except ProtocolError as exc:
        raise CheckFailed(exc.message) from None
    doc = ctx.describe
    return f"{doc['name']} {doc['version']}, capabilities {', '.join(doc['capabilities'])}"


def check_settings_flag(ctx: Context) -> str:
    """``--check-settings`` (optional) accepts the fixture's settings, with no handshake."""
    import msgpack

    from kernel.provider_host.check import read_answer
    from kernel.provider_host.settings import wire_settings

    payload = msgpack.packb(wire_settings(ctx.fixture.settings), use_bin_type=True)
    done = _run(ctx, ["--check-settings"], cookie=False, stdin=payload)
    doc = read_answer(done.returncode, done.stdout)
    if doc is None:
        raise CheckSkipped("--check-settings is not implemented (optional, §2.4.1)")
    if not doc["ok"]:
        message = str(doc.get("message", ""))
        raise CheckFailed(f"--check-settings rejects the fixture's settings: {message:.200}")
    return f"fixture's settings accepted ({len(ctx.fixture.settings)} keys)"


def check_refuses_without_cookie(ctx: Context) -> str:
    """Run by hand (no cookie): an explanation on stderr, nothing on stdout, exit 1."""
    done = _run(ctx, [], cookie=False)
    problems = []
    if done.returncode != 1:
        problems.append(f"exited {done.returncode}, expected 1")
    if done.stdout:
        problems.append(f"wrote {len(done.stdout)} bytes to stdout, expected none")
    if not done.stderr.strip():
        problems.append("printed no explanation on stderr")
    if problems:
        raise CheckFailed("; ".join(problems))
    first = done.stderr.decode("utf-8", "replace").strip().splitlines()[0]
    return f"exit 1: {first:.100}"


def check_handshake(ctx: Context) -> str:
    """The first frame is a valid ``handshake`` notification, within the start timeout."""
    started = time.monotonic()
    try:
        raw = RawProvider(ctx.command.argv, _env(ctx))
    except OSError as exc:
        raise CheckFailed(f"cannot execute {ctx.command.argv[0]}: {exc.strerror}") from None
    try:
        ctx.handshake = _handshake(ctx, raw)
    except BaseException:
        raw.close()  # the raw checks that need this process are skipped
        raise
    ctx.raw = raw
    hs = ctx.handshake
    caps_text = ", ".join(sorted(c.value for c in hs.capabilities))
    elapsed = time.monotonic() - started
    return f"{hs.name} {hs.version}, protocol {hs.protocol}, {caps_text} after {ms(elapsed)}"


def _handshake(ctx: Context, raw: RawProvider) -> Handshake:
    try:
        message = raw.recv(ctx.start_timeout)
    except TimeoutError:
        raise CheckFailed(f"no frame within the start timeout ({ctx.start_timeout:g} s)") from None
    except EOFError:
        status = raw.wait(1.0)
        raise CheckFailed(
            f"exited (status {status}) before the handshake; stderr: {raw.stderr_tail():.200}"
        ) from None
    except ProtocolError as exc:
        raise CheckFailed(f"the first bytes on stdout are not a frame: {exc.message}") from None
    if not isinstance(message, Notification) or message.method != Method.HANDSHAKE:
        raise CheckFailed(f"the first frame is a {type(message).__name__}, not the handshake")
    params = message.params
    if params.get("cookie") != MAGIC_COOKIE_VALUE:
        raise CheckFailed("the handshake does not echo the magic cookie")
    caps = params.get("capabilities")
    if isinstance(caps, list):
        unknown = sorted({str(c) for c in caps} - _KNOWN_CAPABILITIES)
        if unknown:
            raise CheckFailed(
                f"unknown capabilities {unknown} (Protocol 1 defines get, versions, watch, list)"
            )
        if len(set(caps)) != len(caps):
            raise CheckFailed("the capabilities array has duplicates")
    try:
        return Handshake.from_message(message, SUPPORTED_PROTOCOLS)
    except ProtocolError as exc:
        raise CheckFailed(exc.message) from None


def check_describe_matches(ctx: Context) -> str:
    """``--describe`` and the handshake name the same provider, version and capabilities."""
    doc, hs = ctx.describe, ctx.handshake
    if doc is None or hs is None:
        raise CheckFailed("needs both a valid --describe and a valid handshake")
    diffs = []
    if doc["name"] != hs.name:
        diffs.append(f"name {doc['name']!r} vs {hs.name!r}")
    if doc["version"] != hs.version:
        diffs.append(f"version {doc['version']!r} vs {hs.version!r}")
    if hs.protocol not in doc["protocol_versions"]:
        diffs.append(f"protocol {hs.protocol} not in {doc['protocol_versions']}")
    described = sorted(set(doc["capabilities"]) & _KNOWN_CAPABILITIES)
    announced = sorted(c.value for c in hs.capabilities)
    if described != announced:
        diffs.append(f"capabilities {described} vs {announced}")
    if diffs:
        raise CheckFailed("--describe vs handshake: " + "; ".join(diffs))
    return "name, version, protocol and capabilities agree"


def check_stop_on_eof(ctx: Context) -> str:
    """Closing the provider's stdin makes it exit 0 within 2 s."""
    raw = ctx.require_raw(configured=False)
    return _expect_exit(raw, raw.close_stdin, "its stdin closed")


def check_stop_on_sigterm(ctx: Context) -> str:
    """SIGTERM makes the provider exit 0 within 2 s."""
    with RawProvider(ctx.command.argv, _env(ctx)) as raw:
        try:
            raw.recv(ctx.start_timeout)
        except (TimeoutError, EOFError, ProtocolError) as exc:
            raise CheckFailed(f"no handshake: {type(exc).__name__}") from None
        return _expect_exit(raw, lambda: raw.signal(signal.SIGTERM), "SIGTERM")


def _expect_exit(raw: RawProvider, stop: Callable[[], None], what: str) -> str:
    started = time.monotonic()
    stop()
    status = raw.wait(SHUTDOWN_TIMEOUT)
    elapsed = time.monotonic() - started
    if status is None:
        raise CheckFailed(f"still running {SHUTDOWN_TIMEOUT:g} s after {what}")
    if status != 0:
        raise CheckFailed(f"exited {status} after {what}, expected 0")
    return f"exited 0 {ms(elapsed)} after {what}"
