"""The extension registry: pluggy's manager plus what became of every candidate extension.

:class:`ExtensionManager` registers an extension, validates it, and records the outcome as an
:class:`ExtensionRecord` (``enabled``, ``disabled``, ``blocked`` or ``failed`` with the reason)
for ``docker dso extensions list``. Validation is pluggy's: hook arguments are checked on
registration; a hook with no spec (``dso_befor_swap``) is caught per extension, with a "did
you mean", and :meth:`pluggy.PluginManager.check_pending` backs that up. Hook wrappers are
refused (the facade calls each extension on its own). Where extensions come from is
:mod:`kernel.extensions.loading`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pluggy

from kernel.errors import ExtensionError
from kernel.extensions import hookspecs
from kernel.log import get_logger

#: The entry-point group (and pluggy project name) of dso extensions.
ENTRY_POINT_GROUP = "dso"
#: Comma-separated extension names not to load.
DISABLE_ENV = "DSO_DISABLE_EXTENSIONS"
#: Set (to anything but ``0``) to load no third-party extension.
NO_EXTENSIONS_ENV = "DSO_NO_EXTENSIONS"
#: Overrides the extensions directory.
DIRECTORY_ENV = "DSO_EXTENSIONS_DIR"

SOURCE_BUILTIN = "builtin"
SOURCE_ENTRY_POINT = "entry-point"
SOURCE_DIRECTORY = "directory"

_log = get_logger("extensions")


class ExtensionStatus(StrEnum):
    """What became of one extension."""

    #: Registered: its hooks are called.
    ENABLED = "enabled"
    #: A built-in extension switched off (or left unconfigured) in the configuration.
    DISABLED = "disabled"
    #: Skipped because of ``DSO_DISABLE_EXTENSIONS`` or ``DSO_NO_EXTENSIONS``.
    BLOCKED = "blocked"
    #: Could not be loaded or validated; ``reason`` says why.
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ExtensionRecord:
    """One extension as ``docker dso extensions list`` shows it."""

    name: str
    #: ``builtin``, ``entry-point`` or ``directory``.
    source: str
    #: Module (built-in), ``distribution version (module)`` (entry point) or file (directory).
    location: str
    status: ExtensionStatus
    #: Why it is not enabled; empty when it is.
    reason: str = ""
    #: Hooks it implements, sorted.
    hooks: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "location": self.location,
            "status": self.status.value,
            "enabled": self.status is ExtensionStatus.ENABLED,
            "reason": self.reason or None,
            "hooks": list(self.hooks),
        }


class ExtensionManager:
    """The pluggy manager plus what happened to every candidate extension."""

    def __init__(self, pm: pluggy.PluginManager | None = None) -> None:
        if pm is None:
            pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
            pm.add_hookspecs(hookspecs)
        self.pm = pm
        self.records: list[ExtensionRecord] = []
        #: The directory that was scanned (``None`` when third-party loading is blocked).
        self.directory: Path | None = None

    # -- registration ---------------------------------------------------------------------

    def refusal(self, name: str) -> tuple[ExtensionStatus, str] | None:
        """Why ``name`` cannot be registered at all (blocked, or taken), checked before import."""
        if self.pm.is_blocked(name):
            return ExtensionStatus.BLOCKED, blocked_reason()
        taken = self.record(name)
        if taken is not None and taken.status in (
            ExtensionStatus.ENABLED,
            ExtensionStatus.DISABLED,
        ):
            return (
                ExtensionStatus.FAILED,
                f"the name is already used by the {taken.source} extension ({taken.location})",
            )
        return None

    def add(self, name: str, plugin: object, *, source: str, location: str) -> bool:
        """Register ``plugin`` as ``name`` and record the outcome; False when it failed."""
        refused = self.refusal(name)
        if refused is not None:
            self._record(name, source, location, *refused)
            return False
        try:
            self.pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            self._record(name, source, location, ExtensionStatus.FAILED, one_line(exc))
            return False
        problem = self._validate(plugin)
        if problem:
            self.pm.unregister(plugin)
            self._record(name, source, location, ExtensionStatus.FAILED, problem)
            return False
        self._record(name, source, location, ExtensionStatus.ENABLED, hooks=self.hooks_of(plugin))
        return True

    def skip(
        self, name: str, *, source: str, location: str, status: ExtensionStatus, reason: str
    ) -> None:
        """Record an extension that is deliberately not registered (or could not be imported)."""
        self._record(name, source, location, status, reason)

    def hooks_of(self, plugin: object) -> tuple[str, ...]:
        callers = self.pm.get_hookcallers(plugin) or []
        return tuple(sorted(caller.name for caller in callers))

    def _validate(self, plugin: object) -> str:
        """Why ``plugin``'s hooks are unusable, or an empty string."""
        specs = [name for name in dir(hookspecs) if name.startswith("dso_")]
        problems: list[str] = []
        callers = self.pm.get_hookcallers(plugin) or []
        if not callers:
            problems.append("implements no dso hook (decorate functions with `@hookimpl`)")
        for caller in callers:
            impls = [impl for impl in caller.get_hookimpls() if impl.plugin is plugin]
            if not caller.has_spec() and not all(impl.optionalhook for impl in impls):
                message = f"unknown hook {caller.name!r}"
                guess = difflib.get_close_matches(caller.name, specs, n=1)
                problems.append(message + (f" (did you mean {guess[0]!r}?)" if guess else ""))
            if any(impl.wrapper or impl.hookwrapper for impl in impls):
                problems.append(
                    f"{caller.name}: hook wrappers are not supported (each extension is "
                    "called on its own, so one failure cannot stop the others)"
                )
        return "; ".join(problems)

    def _record(
        self,
        name: str,
        source: str,
        location: str,
        status: ExtensionStatus,
        reason: str = "",
        hooks: tuple[str, ...] = (),
    ) -> None:
        self.records.append(ExtensionRecord(name, source, location, status, reason, hooks))
        if status is ExtensionStatus.FAILED:
            _log.warning(
                "extension %r (%s %s) not loaded: %s",
                name,
                source,
                location,
                reason,
                extra={"extension": name},
            )

    # -- queries --------------------------------------------------------------------------

    def record(self, name: str) -> ExtensionRecord | None:
        """The enabled record of ``name`` if any, else the last one seen."""
        found = [r for r in self.records if r.name == name]
        enabled = [r for r in found if r.status is ExtensionStatus.ENABLED]
        chosen = enabled or found
        return chosen[-1] if chosen else None

    @property
    def failures(self) -> list[ExtensionRecord]:
        return [r for r in self.records if r.status is ExtensionStatus.FAILED]

    def enabled(self) -> list[str]:
        return [r.name for r in self.records if r.status is ExtensionStatus.ENABLED]

    def check(self) -> None:
        """Raise :class:`ExtensionError` naming every extension that failed to load."""
        if self.failures:
            lines = [f"{r.name} ({r.source} {r.location}): {r.reason}" for r in self.failures]
            raise ExtensionError(
                f"{len(lines)} extension(s) could not be loaded: " + "; ".join(lines),
                hint=f"fix or remove it, or skip it with {DISABLE_ENV}=<name>; "
                "`docker dso extensions list` shows every extension",
            )
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:  # only reachable if _validate missed one
            name = self.pm.get_name(exc.plugin) or repr(exc.plugin)
            raise ExtensionError(f"extension {name!r}: {one_line(exc)}") from None


def blocked_reason() -> str:
    return f"listed in {DISABLE_ENV}"


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500] or type(exc).__name__
