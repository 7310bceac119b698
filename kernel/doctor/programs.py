"""Provider checks: each configured provider's program is there and matches ``SHA256SUMS``
(``providers.binaries``), and, at ``--level full``, each provider starts, completes its
handshake and accepts its settings, and knows every secret the managed containers reference
(``providers.reachable``).

The full check asks ``versions`` (ids only), never ``get``: the doctor never holds a secret
value. A provider that does not offer ``versions`` is only started and pinged. References pinned
to a version (``dso://app/db@3``) are not asked about: they cannot move.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kernel.agent.managed import scan_managed
from kernel.doctor.files import unsafe
from kernel.doctor.model import Check, Finding, NotChecked, fail, ok, warn
from kernel.errors import DSOError, ProviderError
from kernel.protocol import EXECUTABLE_PREFIX, SecretRef
from kernel.provider_host import MANIFEST_NAME, ProviderHost, plugins_dir
from kernel.provider_host.discovery import scan_plugins_dir, scan_release, source_names
from kernel.reference import parse_reference

if TYPE_CHECKING:
    from kernel.config import Config
    from kernel.doctor.context import Context


def providers_binaries(ctx: Context) -> Finding:
    config = ctx.config()
    directory = plugins_dir(ctx.layout, ctx.environ)
    found, rejected, manifest = scan_plugins_dir(directory, environ=ctx.environ)
    by_name = {f.name: f for f in found}
    rejected_by_name = {r.name: r for r in rejected if r.name is not None}
    # A frozen dso's own providers: <release>/plugins, verified against its SHA256SUMS.
    # A frozen dso's own providers (<release>/plugins, verified against its SHA256SUMS), where
    # the plugins directory has no candidate of that name.
    shadowed = set(by_name) | set(rejected_by_name)
    bundled, bundled_rejected = scan_release(environ=ctx.environ)
    by_name.update({f.name: f for f in bundled if f.name not in shadowed})
    for bad in bundled_rejected:
        if bad.name is not None and bad.name not in shadowed:
            rejected_by_name[bad.name] = bad
    source = set(source_names())
    failures: list[str] = []
    warnings: list[str] = []
    lines: list[str] = []
    for program in sorted({p.type for p in config.providers.values()}):
        users = sorted(n for n, p in config.providers.items() if p.type == program)
        label = f"{program} (provider {', '.join(users)})"
        if program in by_name:
            item = by_name[program]
            if item.verified:
                lines.append(f"{label}: {item.path}, matches {MANIFEST_NAME}")
            else:
                warnings.append(f"{label}: {item.path} runs unverified (DSO_PLUGINS_UNVERIFIED)")
        elif program in rejected_by_name:
            bad = rejected_by_name[program]
            failures.append(f"{label}: {bad.path} cannot be used: {bad.reason}")
        elif program in source:
            lines.append(f"{label}: part of dso (python -m providers.{program})")
        else:
            failures.append(f"{label}: no program {EXECUTABLE_PREFIX}{program} in {directory}")
    configured = {p.type for p in config.providers.values()}
    for candidate in rejected:
        if candidate.name not in configured:
            warnings.append(f"{candidate.path} (not configured) cannot be used: {candidate.reason}")
    if manifest is not None:
        warnings += [f"{manifest.path}: {problem}" for problem in manifest.problems]
        try:
            why = unsafe(os.stat(manifest.path), ctx.euid)
        except OSError:
            why = None
        if why is not None:
            failures.append(f"{manifest.path} {why}: anyone who can edit it picks what runs")
    detail = "\n".join([*failures, *warnings, *lines, f"plugins directory: {directory}"])
    fix = (
        f"install each program into {directory} with its line in {MANIFEST_NAME} "
        f"(sha256sum {EXECUTABLE_PREFIX}NAME >> {MANIFEST_NAME}); `docker dso providers list` "
        "shows every candidate and why it was rejected"
    )
    if failures:
        return fail(failures[0] + _more(failures, warnings), detail, fix)
    if warnings:
        return warn(warnings[0] + _more(warnings, []), detail, fix)
    return ok(f"{len(lines)} provider program(s) found and verified", detail)


def _more(first: list[str], then: list[str]) -> str:
    more = len(first) + len(then) - 1
    return f" (and {more} more)" if more > 0 else ""


# -- full level: contact every provider ---------------------------------------------------------


@dataclass(slots=True)
class Contact:
    """What contacting one provider found."""

    name: str
    started: str = ""
    error: str = ""
    #: Secret path → "code: message" for each referenced secret the provider cannot serve.
    missing: dict[str, str] = field(default_factory=dict)
    asked: int = 0
    note: str = ""
    seconds: float = 0.0


def referenced(ctx: Context, config: Config) -> tuple[dict[str, dict[str, list[str]]], str]:
    """Provider → secret path → the containers (``name VARIABLE``) referencing it, from the
    labels of this installation's managed containers; and a note when they could not be
    listed."""

    try:
        managed = scan_managed(ctx.docker(), ctx.owner())
    except (NotChecked, DSOError) as exc:
        reason = exc.reason if isinstance(exc, NotChecked) else exc.message
        return {}, f"managed containers not listed ({reason}): no secret was read"
    wanted: dict[str, dict[str, list[str]]] = {}
    for container in managed:
        for variable, text in container.references.items():
            try:
                ref = parse_reference(text)
            except DSOError:
                continue
            if ref.version is not None:
                continue
            provider = ref.provider or config.default_provider
            users = wanted.setdefault(provider, {}).setdefault(ref.path, [])
            users.append(f"{container.name} {variable}")
    return wanted, ""


def contact(host: ProviderHost, name: str, paths: Mapping[str, list[str]]) -> Contact:
    """Start provider ``name`` (handshake, configure), then ``versions`` of ``paths``."""

    report = Contact(name)
    began = time.perf_counter()
    try:
        provider = host.client(name)
        provider.ping()
        client = provider.client
        if client is not None:
            hs = client.handshake
            report.started = f"{hs.name} {hs.version}, protocol {hs.protocol}"
        refs = [SecretRef(str(i), path) for i, path in enumerate(sorted(paths))]
        if refs:
            try:
                answer = provider.versions(refs)
            except ProviderError as exc:
                if exc.code != "invalid_request" or "'versions'" not in exc.message:
                    raise
                report.note = "it offers no `versions`: the secrets were not looked up"
            else:
                report.asked = len(refs)
                by_id = {ref.id: ref.path for ref in refs}
                for ref_id, error in answer.errors.items():
                    report.missing[by_id.get(ref_id, ref_id)] = f"{error.code}: {error.message}"
    except DSOError as exc:
        report.error = exc.message + (f" ({exc.hint})" if exc.hint else "")
    report.seconds = time.perf_counter() - began
    return report


def providers_reachable(ctx: Context) -> Finding:
    config = ctx.config()
    wanted, note = referenced(ctx, config)
    names = sorted(n for n in config.providers if _worth_contacting(ctx, config, n, wanted))
    host = ProviderHost(config, ctx.layout, environ=ctx.environ)
    try:
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            reports = list(pool.map(lambda n: contact(host, n, wanted.get(n, {})), names))
    finally:
        host.close()
    unknown = sorted(set(wanted) - set(config.providers))
    return _judge(reports, wanted, unknown, note)


def _worth_contacting(
    ctx: Context, config: Config, name: str, wanted: Mapping[str, object]
) -> bool:
    """Every configured provider, except the implicit local one nobody uses (the
    configuration always holds ``local``; without a vault it could only fail)."""
    if name == config.default_provider or name in wanted:
        return True
    provider = config.providers[name]
    if provider.type != "local" or provider.settings.get("path"):
        return True
    return ctx.layout.vault.exists()


def _judge(
    reports: list[Contact],
    wanted: Mapping[str, Mapping[str, list[str]]],
    unknown: list[str],
    note: str,
) -> Finding:
    failures: list[str] = []
    warnings: list[str] = []
    lines: list[str] = []
    for report in reports:
        took = f"{report.seconds:.2f} s"
        if report.error:
            failures.append(f"{report.name}: {report.error}")
            continue
        for path, why in sorted(report.missing.items()):
            users = ", ".join(wanted.get(report.name, {}).get(path, []))
            failures.append(f"{report.name}: {path}: {why} (used by {users})")
        if report.note:
            warnings.append(f"{report.name}: {report.note}")
        found = report.asked - len(report.missing)
        lines.append(
            f"{report.name}: {report.started or 'started'}; {found} of {report.asked} "
            f"referenced secret(s) found ({took})"
        )
    for name in unknown:
        paths = ", ".join(sorted(wanted[name]))
        failures.append(
            f"{name}: containers reference this provider, which is not configured ({paths})"
        )
    if note:
        warnings.append(note)
    detail = "\n".join([*failures, *warnings, *lines])
    fix = (
        "a provider that does not start: docker dso providers check NAME (each step, timed); "
        "a missing secret: create it in its back end (docker dso secret set PATH for the "
        "local vault), or change the reference and `docker dso up -d` again"
    )
    if failures:
        return fail(failures[0] + _more(failures, warnings), detail, fix)
    if warnings:
        return warn(warnings[0] + _more(warnings, []), detail, fix)
    asked = sum(r.asked for r in reports)
    return ok(f"{len(reports)} provider(s) answer; {asked} referenced secret(s) found", detail)


CHECKS = (
    Check(
        "providers.binaries",
        "each configured provider's program is there and matches SHA256SUMS",
        providers_binaries,
    ),
    Check(
        "providers.reachable",
        "each provider starts and knows every secret the managed containers use",
        providers_reachable,
        full_only=True,
    ),
)
