"""Checks of the methods, as the kernel uses them: through the provider host's client
(protocol §5, §6, §8.1, §9, §11). Results are compared with the fixture; details give sizes,
ids and timings, never values."""

from __future__ import annotations

import queue
import time
from concurrent.futures import Future
from typing import Any

from kernel.conformance.base import CheckFailed, CheckSkipped, Context, ms
from kernel.conformance.fixture import ExpectedSecret
from kernel.errors import DSOError
from kernel.protocol import (
    SHUTDOWN_TIMEOUT,
    Capability,
    Changed,
    ErrorCode,
    GetResult,
    SecretRef,
    wire_code,
)

#: Requests in flight at once in the pipelining check.
PIPELINED = 500


def check_host_start(ctx: Context) -> str:
    """The provider host starts the provider, accepts its handshake and configures it."""
    from kernel.provider_host import ProviderClient

    started = time.monotonic()
    ctx.client = ProviderClient.start(
        ctx.command,
        start_timeout=ctx.start_timeout,
        request_timeout=ctx.request_timeout,
        environ=ctx.environ,
    )
    handshake = time.monotonic() - started
    ctx.client.configure(ctx.fixture.settings)
    ctx.client_configured = True
    configured = time.monotonic() - started - handshake
    return f"pid {ctx.client.pid}: handshake {ms(handshake)}, configure {ms(configured)}"


def _refs(secrets: list[ExpectedSecret], prefix: str) -> list[SecretRef]:
    return [secret.ref(f"{prefix}{i}") for i, secret in enumerate(secrets)]


def _compare(result: GetResult, refs: list[SecretRef], secrets: list[ExpectedSecret]) -> None:
    for ref, secret in zip(refs, secrets, strict=True):
        error = result.errors.get(ref.id)
        if error is not None:
            raise CheckFailed(f"{secret.label}: {error.code.value}: {error.message:.160}")
        data = result.values[ref.id]
        problem = secret.mismatch(data.value)
        if problem:
            raise CheckFailed(problem)
        if not data.version:
            raise CheckFailed(f"{secret.label}: empty version id")


def check_get(ctx: Context) -> str:
    """One ``get`` batch returns every fixture secret's value and a version id."""
    client = ctx.require_client()
    secrets = list(ctx.fixture.small)
    refs = _refs(secrets, "g")
    started = time.monotonic()
    result = client.get(refs)
    elapsed = time.monotonic() - started
    _compare(result, refs, secrets)
    for ref, secret in zip(refs, secrets, strict=True):
        ctx.versions[secret.label] = result.values[ref.id].version
    return f"{len(refs)} references in one batch, {ms(elapsed)}"


def check_not_found(ctx: Context) -> str:
    """An unknown reference is ``not_found`` in ``errors``; the rest of the batch succeeds."""
    client = ctx.require_client()
    secret = ctx.fixture.small[0]
    refs = [secret.ref("present"), SecretRef("absent", ctx.fixture.missing)]
    result = client.get(refs)
    _compare(result, refs[:1], [secret])
    error = result.errors.get("absent")
    if error is None:
        raise CheckFailed(
            f"{ctx.fixture.missing!r} returned a value; the fixture says it is absent"
        )
    if error.code is not ErrorCode.NOT_FOUND:
        raise CheckFailed(f"{ctx.fixture.missing!r}: expected not_found, got {error.code.value}")
    return f"not_found: {error.message:.160}"


def check_versions(ctx: Context) -> str:
    """``versions`` returns the same version ids as ``get`` (and ``not_found``), no values."""
    ctx.require_capability(Capability.VERSIONS)
    client = ctx.require_client()
    secrets = [s for s in ctx.fixture.small if s.label in ctx.versions]
    if not secrets:
        raise CheckSkipped("needs the version ids from 'get'")
    refs = [*_refs(secrets, "v"), SecretRef("absent", ctx.fixture.missing)]
    result = client.versions(refs)
    for ref, secret in zip(refs, secrets, strict=False):
        error = result.errors.get(ref.id)
        if error is not None:
            raise CheckFailed(f"{secret.label}: {error.code.value}: {error.message:.160}")
        if result.versions[ref.id] != ctx.versions[secret.label]:
            raise CheckFailed(
                f"{secret.label}: versions says {result.versions[ref.id]!r:.40},"
                f" get said {ctx.versions[secret.label]!r:.40}"
            )
    absent = result.errors.get("absent")
    if absent is None or absent.code is not ErrorCode.NOT_FOUND:
        got = "a version" if absent is None else absent.code.value
        raise CheckFailed(f"{ctx.fixture.missing!r}: expected not_found, got {got}")
    return f"{len(secrets)} version ids agree with get; the absent one is not_found"


def check_list(ctx: Context) -> str:
    """``list`` names every fixture path, also under a prefix."""
    ctx.require_capability(Capability.LIST)
    client = ctx.require_client()
    names = set(client.list_names())
    paths = sorted({s.path for s in ctx.fixture.secrets})
    absent = [p for p in paths if p not in names]
    if absent:
        raise CheckFailed(f"list does not name {absent[:3]} ({len(names)} names listed)")
    if ctx.fixture.missing in names:
        raise CheckFailed(f"list names {ctx.fixture.missing!r}, which the fixture says is absent")
    nested = [p for p in paths if "/" in p]
    if not nested:
        return f"{len(names)} names, every fixture path among them"
    prefix = nested[0][: nested[0].rindex("/") + 1]
    under = client.list_names(prefix)
    if nested[0] not in under:
        raise CheckFailed(f"list with prefix {prefix!r} does not name {nested[0]!r}")
    return f"{len(names)} names; {len(under)} under {prefix!r}"


def check_large_value(ctx: Context) -> str:
    """The fixture's largest value (≥ 512 KiB) arrives intact."""
    client = ctx.require_client()
    secret = ctx.fixture.large
    if secret is None:
        raise CheckSkipped("the fixture has no value of 512 KiB or more")
    ref = secret.ref("large")
    started = time.monotonic()
    result = client.get([ref])
    elapsed = time.monotonic() - started
    _compare(result, [ref], [secret])
    return f"{len(result.values['large'].value)} bytes in {ms(elapsed)}"


def check_pipelining(ctx: Context) -> str:
    """500 requests sent before any answer are each answered once, matched by id."""
    client = ctx.require_client()
    secrets = list(ctx.fixture.small)
    started = time.monotonic()
    futures: list[tuple[Future[Any], ExpectedSecret | None, str]] = []
    for i in range(PIPELINED):
        if i % 2:
            futures.append((client.submit("ping", {}), None, ""))
        else:
            asked = secrets[i // 2 % len(secrets)]
            ref_id = f"p{i}"
            params = {"refs": [asked.ref(ref_id).to_wire()]}
            futures.append((client.submit("get", params), asked, ref_id))
    for future, expected, ref_id in futures:
        raw = future.result(ctx.request_timeout + 5)
        if expected is None:
            continue
        result = GetResult.from_wire(raw, [ref_id])
        _compare(result, [expected.ref(ref_id)], [expected])
    elapsed = time.monotonic() - started
    return f"{PIPELINED} requests (get and ping) in {ms(elapsed)}, {PIPELINED / elapsed:.0f}/s"


def check_watch(ctx: Context) -> str:
    """``watch`` is accepted; a change of a watched secret sends ``changed`` naming it."""
    ctx.require_capability(Capability.WATCH)
    client = ctx.require_client()
    fixture = ctx.fixture
    paths = sorted({s.path for s in fixture.small} | {fixture.change_path or fixture.small[0].path})
    refs = [SecretRef(f"w{i}", path) for i, path in enumerate(paths)]
    notes: queue.SimpleQueue[Changed] = queue.SimpleQueue()
    client.watch(refs, notes.put)
    try:
        if fixture.mutate is None or fixture.change_path is None:
            return "watch accepted; the fixture has no change source, notifications not checked"
        wanted = {ref.id for ref in refs if ref.path == fixture.change_path}
        try:
            fixture.mutate(client)
        except Exception as exc:
            # Our mutators and a fixture's command line: their messages carry no values.
            raise CheckFailed(f"the fixture's change failed: {type(exc).__name__}: {exc}") from None
        changed_at = time.monotonic()
        end = changed_at + fixture.change_timeout
        while True:
            try:
                note = notes.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise CheckFailed(
                    f"no changed notification for {fixture.change_path!r} within"
                    f" {fixture.change_timeout:g} s of the change"
                ) from None
            if wanted & set(note.refs) or fixture.change_path in note.paths:
                return f"changed for {fixture.change_path!r} {ms(time.monotonic() - changed_at)}"
    finally:
        client.watch([], notes.put)


def check_stdout_integrity(ctx: Context) -> str:
    """After everything, the frame stream is intact: no stray bytes broke it."""
    client = ctx.require_client()
    if not client.alive:
        failure = client.failure
        raise CheckFailed(failure.message if failure is not None else "the provider is gone")
    rtt = client.ping()
    return f"still serving (ping {ms(rtt)}); no stray output on stdout"


def check_shutdown(ctx: Context) -> str:
    """``shutdown`` is answered and the provider exits 0 within 2 s."""
    client = ctx.require_client()
    started = time.monotonic()
    status = client.close(grace=SHUTDOWN_TIMEOUT)
    elapsed = time.monotonic() - started
    ctx.client = None
    if status != 0:
        raise CheckFailed(f"exit status {status} after shutdown, expected 0")
    if elapsed >= SHUTDOWN_TIMEOUT:
        raise CheckFailed(f"took {ms(elapsed)} to exit; the limit is {SHUTDOWN_TIMEOUT:g} s")
    return f"exited 0 in {ms(elapsed)}"


def describe_error(exc: DSOError) -> str:
    """A kernel error raised by the client, for a failed check's detail."""
    try:
        code = wire_code(exc).value
    except Exception:
        code = "error"
    return f"{code}: {exc.message}"
