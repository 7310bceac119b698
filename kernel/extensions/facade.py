"""The one caller of lifecycle hooks: a typed method per hook, each extension isolated.

pluggy calls every implementation of a hook in one loop, and the first exception ends the loop
for everyone. Here each extension is called on its own (through
:meth:`pluggy.PluginManager.subset_hook_caller`, in pluggy's order: last registered first,
``tryfirst``/``trylast`` honoured), so one that raises is logged with the trace id, the
extension name and the exception, and the others still run. Nothing an extension does can
break a rotation except a veto, and only :meth:`Extensions.before_swap` can return one; an
exception there is logged and is not a veto.

The exception text is logged as the extension wrote it: it comes from extension code, which
only ever sees metadata, never a secret value. Every event is checked for metadata only
(:func:`~kernel.extensions.events.check_metadata_only`) before any extension sees it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel.extensions.events import RotationEvent, Veto, check_metadata_only
from kernel.extensions.loading import load_extensions
from kernel.extensions.manager import ExtensionManager
from kernel.log import get_logger

if TYPE_CHECKING:
    import pluggy

    from kernel.config import ExtensionsConfig
    from kernel.paths import Layout

#: Hook name → the :class:`Extensions` method that calls it (a test keeps them in step).
HOOK_METHODS: dict[str, str] = {
    "dso_rotation_planned": "planned",
    "dso_rotation_started": "started",
    "dso_before_swap": "before_swap",
    "dso_after_swap": "after_swap",
    "dso_rotation_failed": "failed",
    "dso_rotation_rolled_back": "rolled_back",
    "dso_rotation_completed": "completed",
    "dso_shutdown": "shutdown",
}

#: A hook call slower than this (seconds) is logged: hooks run inside the rotation.
SLOW_CALL = 1.0

_log = get_logger("extensions")


class Extensions:
    """Calls the loaded extensions' hooks for the rotation engine (and the agent)."""

    def __init__(self, manager: ExtensionManager | None = None, *, slow_call: float = SLOW_CALL):
        self.manager = manager if manager is not None else ExtensionManager()
        self._pm: pluggy.PluginManager = self.manager.pm
        self._slow_call = slow_call
        self._shut_down = False

    @classmethod
    def load(
        cls,
        layout: Layout,
        config: ExtensionsConfig | None = None,
        *,
        env: Mapping[str, str] | None = None,
        directory: Path | None = None,
        strict: bool = True,
    ) -> Extensions:
        """Load built-in, entry-point and directory extensions (see :mod:`.loading`).

        With ``strict`` an extension that cannot be loaded raises
        :class:`~kernel.errors.ExtensionError`; rotating commands fail early rather than rotate
        without, say, an extension meant to veto.
        """
        return cls(load_extensions(layout, config, env=env, directory=directory, strict=strict))

    @property
    def names(self) -> list[str]:
        """Names of the enabled extensions, in load order."""
        return self.manager.enabled()

    # -- lifecycle hooks ------------------------------------------------------------------

    def planned(self, event: RotationEvent) -> None:
        """``dso_rotation_planned``: the plan is known (also for ``--dry-run``)."""
        self._notify("dso_rotation_planned", event)

    def started(self, event: RotationEvent) -> None:
        """``dso_rotation_started``: the lock is held and the journal entry written."""
        self._notify("dso_rotation_started", event)

    def before_swap(self, event: RotationEvent) -> Veto | None:
        """``dso_before_swap``: the first non-empty reason string an extension returns vetoes.

        Returns the :class:`Veto` (roll back, record as vetoed, then call :meth:`rolled_back`
        with ``vetoed_by``/``error`` set) or ``None`` to go ahead. Exceptions are not vetoes.
        """
        check_metadata_only(event)
        for name, caller in self._callers("dso_before_swap"):
            ok, result = self._call("dso_before_swap", name, caller, event)
            if not ok or result is None or result == "":
                continue
            if not isinstance(result, str):
                _log.warning(
                    "extension %r returned %s from dso_before_swap, not a reason string or "
                    "None; ignored",
                    name,
                    type(result).__name__,
                    extra=_context(event, name, "dso_before_swap"),
                )
                continue
            veto = Veto(name, result)
            _log.warning(
                "%s: the swap of %s is refused and the rotation rolled back",
                veto,
                event.target,
                extra=_context(event, name, "dso_before_swap"),
            )
            return veto
        return None

    def after_swap(self, event: RotationEvent) -> None:
        """``dso_after_swap``: the new container serves under the canonical name."""
        self._notify("dso_after_swap", event)

    def failed(self, event: RotationEvent) -> None:
        """``dso_rotation_failed``: a step failed (``event.step``, ``event.error``)."""
        self._notify("dso_rotation_failed", event)

    def rolled_back(self, event: RotationEvent) -> None:
        """``dso_rotation_rolled_back``: the old container serves again."""
        self._notify("dso_rotation_rolled_back", event)

    def completed(self, event: RotationEvent) -> None:
        """``dso_rotation_completed``: the rotation succeeded."""
        self._notify("dso_rotation_completed", event)

    def shutdown(self) -> None:
        """``dso_shutdown``: let extensions flush background work. Only the first call counts."""
        if self._shut_down:
            return
        self._shut_down = True
        for name, caller in self._callers("dso_shutdown"):
            self._call("dso_shutdown", name, caller, None)

    def __enter__(self) -> Extensions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- dispatch -------------------------------------------------------------------------

    def _notify(self, hook: str, event: RotationEvent) -> None:
        check_metadata_only(event)
        for name, caller in self._callers(hook):
            self._call(hook, name, caller, event)

    def _callers(self, hook: str) -> list[tuple[str, pluggy.HookCaller]]:
        """One caller per extension implementing ``hook``, in pluggy's call order."""
        impls = getattr(self._pm.hook, hook).get_hookimpls()
        plugins = [impl.plugin for impl in impls]
        callers = []
        for impl in reversed(impls):  # pluggy calls the last-registered implementation first
            others = [plugin for plugin in plugins if plugin is not impl.plugin]
            callers.append((impl.plugin_name, self._pm.subset_hook_caller(hook, others)))
        return callers

    def _call(
        self, hook: str, name: str, caller: pluggy.HookCaller, event: RotationEvent | None
    ) -> tuple[bool, Any]:
        """Call one extension; ``(False, None)`` when it raised (logged, never propagated)."""
        started = time.monotonic()
        try:
            result = caller() if event is None else caller(event=event)
        except (Exception, SystemExit) as exc:
            consequence = "not a veto" if hook == "dso_before_swap" else "the rotation goes on"
            _log.warning(
                "extension %r raised in %s (ignored, %s): %s: %s",
                name,
                hook,
                consequence,
                type(exc).__name__,
                " ".join(str(exc).split())[:500],
                extra=_context(event, name, hook),
                exc_info=_log.isEnabledFor(logging.DEBUG),
            )
            return False, None
        finally:
            elapsed = time.monotonic() - started
            if elapsed > self._slow_call:
                _log.warning(
                    "extension %r took %.1f s in %s; hooks run inside the rotation, so move "
                    "slow work to a background thread",
                    name,
                    elapsed,
                    hook,
                    extra=_context(event, name, hook),
                )
        return True, result


def _context(event: RotationEvent | None, name: str, hook: str) -> dict[str, str]:
    context = {"extension": name, "hook": hook}
    if event is not None:
        context["trace_id"] = event.trace_id
    return context
