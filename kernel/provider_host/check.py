"""Asking a provider program whether its dso.yaml settings are valid, before anything runs.

``docker dso config validate`` runs ``dso-provider-<type> --check-settings`` for every configured
provider: the program parses its settings exactly as ``configure`` would, without a handshake and
without contacting its back end, and answers with one JSON line (docs/provider-protocol.md,
"Checking settings"). The settings go to its stdin as msgpack, never on the command line; the
program is verified against SHA256SUMS like any start, and gets the same filtered environment.

A program that does not know ``--check-settings`` (a third-party one written before it existed)
is reported as *not checked*, never as invalid.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgpack

from kernel.errors import ConfigError, DSOError
from kernel.protocol.codes import clean_message
from kernel.provider_host.settings import wire_settings

if TYPE_CHECKING:
    from collections.abc import Mapping

    from kernel.config import Config, ProviderConfig
    from kernel.paths import Layout
    from kernel.provider_host.registry import ProviderHost

CHECK_FLAG = "--check-settings"
#: Seconds a check may take (a frozen program starts in ~60 ms; parsing is instant).
CHECK_TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class SettingsVerdict:
    """What a provider program said of its settings."""

    #: The provider's name in dso.yaml.
    provider: str
    #: True: the program checked them (see ``ok``); False: it could not (see ``message``).
    checked: bool
    ok: bool = True
    message: str = ""
    #: The dotted setting at fault (``auth.method``), when the program named one.
    setting: str | None = None


def check_settings(
    host: ProviderHost, name: str, *, environ: Mapping[str, str], timeout: float = CHECK_TIMEOUT
) -> SettingsVerdict:
    """Run provider ``name``'s program with ``--check-settings``; never raises for the
    program's own failures (they become a not-checked verdict naming the reason)."""
    plan = host.plan(name)
    try:
        command = plan.resolve()
        command.verify()
    except DSOError as exc:
        return SettingsVerdict(name, checked=False, message=exc.message)
    payload = msgpack.packb(wire_settings(plan.settings), use_bin_type=True)
    try:
        done = subprocess.run(
            [*command.argv, CHECK_FLAG],
            input=payload,
            capture_output=True,
            env=command.environment(environ),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return SettingsVerdict(name, checked=False, message=f"no answer within {timeout:g} s")
    except OSError as exc:
        return SettingsVerdict(
            name, checked=False, message=f"cannot execute {command.argv[0]}: {exc.strerror}"
        )
    return _verdict(name, done.returncode, done.stdout)


def read_answer(status: int, stdout: bytes) -> dict[str, Any] | None:
    """The program's JSON answer (its last stdout line), or None when it gave none: it does
    not implement ``--check-settings``."""
    lines = stdout.decode(errors="replace").strip().splitlines()
    try:
        doc = json.loads(lines[-1]) if lines and status == 0 else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("ok"), bool) else None


def _verdict(name: str, status: int, stdout: bytes) -> SettingsVerdict:
    doc = read_answer(status, stdout)
    if doc is None:
        return SettingsVerdict(
            name, checked=False, message=f"the program does not support {CHECK_FLAG}"
        )
    if doc["ok"]:
        return SettingsVerdict(name, checked=True)
    setting = doc.get("setting")
    return SettingsVerdict(
        name,
        checked=True,
        ok=False,
        message=clean_message(str(doc.get("message") or "invalid settings"))[:1000],
        setting=setting if isinstance(setting, str) and setting else None,
    )


def check_configured(
    config: Config, layout: Layout, *, environ: Mapping[str, str]
) -> tuple[list[ConfigError], list[str]]:
    """Ask every provider written in the configuration file about its settings, in parallel.

    Returns the invalid settings as :class:`ConfigError` at their file and line, and a warning
    for each provider whose settings could not be checked.
    """
    from concurrent.futures import ThreadPoolExecutor

    from kernel.provider_host.registry import ProviderHost

    written = [p for p in config.providers.values() if p.line is not None]
    if not written:
        return [], []
    errors: list[ConfigError] = []
    warnings: list[str] = []
    with (
        ProviderHost(config, layout, environ=environ) as host,
        ThreadPoolExecutor(max_workers=min(8, len(written))) as pool,
    ):
        verdicts = list(pool.map(lambda p: check_settings(host, p.name, environ=environ), written))
    for provider, verdict in zip(written, verdicts, strict=True):
        where = f"{provider.source}:{provider.line}: providers.{provider.name}"
        if not verdict.checked:
            warnings.append(f"{where}: settings not checked: {verdict.message}")
        elif not verdict.ok:
            errors.append(_setting_error(provider, verdict))
    return sorted(errors, key=lambda e: e.line or 0), warnings


def _setting_error(provider: ProviderConfig, verdict: SettingsVerdict) -> ConfigError:
    hint = f"docs/providers/{provider.type}.md lists its settings"
    if verdict.setting and verdict.setting.split(".")[0].split("[")[0] in provider.settings:
        return provider.setting_error(verdict.setting, verdict.message, hint=hint)
    return ConfigError(
        verdict.message,
        path=provider.source,
        line=provider.line,
        key=f"providers.{provider.name}",
        hint=hint,
    )
