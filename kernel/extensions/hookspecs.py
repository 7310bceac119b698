"""The lifecycle hooks extensions implement, one ``dso_<event>`` function per event.

Every hook receives an ``event`` (:class:`~kernel.extensions.events.RotationEvent`): metadata
about the rotation, never a secret value. Only :class:`~kernel.extensions.facade.Extensions`
calls these hooks; it calls each extension on its own, so one that raises is logged (with the
trace id) and the others still run. Hooks run inside the rotation, possibly from several
threads at once (independent rotations run in parallel): return quickly and be thread-safe;
push slow work (network calls) to a background thread, as the built-in webhook does.

A rotation announces ``rotation_planned``, then (unless it is a dry run) ``rotation_started``,
``before_swap``, ``after_swap`` and ``rotation_completed``; a failure announces
``rotation_failed`` at once and ``rotation_rolled_back`` when the old container serves again.
Every rotation that started ends with exactly one of ``rotation_completed``,
``rotation_rolled_back``, or ``rotation_failed`` alone (no rollback was possible or wanted).

Implement a hook with ``from kernel import hookimpl`` (docs/extension-hooks.md).
"""

from __future__ import annotations

import pluggy

from kernel.extensions.events import RotationEvent

#: Marks the hook specifications below.
hookspec = pluggy.HookspecMarker("dso")
#: Marks an extension's hook implementations; re-exported as ``kernel.hookimpl``.
hookimpl = pluggy.HookimplMarker("dso")


@hookspec
def dso_rotation_planned(event: RotationEvent) -> None:
    """Called once the plan of a rotation is known: target, strategy, changed references.

    Also called for ``--dry-run`` (``event.dry_run`` is true), and then nothing else follows.
    Nothing has been changed yet. Observe only; the return value is ignored.
    """


@hookspec
def dso_rotation_started(event: RotationEvent) -> None:
    """Called when a rotation begins changing things: its lock is held, its journal entry
    written (``in_progress``), and ``event.old_container`` names the container being replaced.

    Observe only; the return value is ignored.
    """


@hookspec(firstresult=True)
def dso_before_swap(event: RotationEvent) -> str | None:
    """Called right before the swap: the new container (``event.new_container``) passed its
    health gate and the old one still serves. For ``reload``, before the files are replaced.

    Return a non-empty reason string to **veto** the swap: the rotation is then rolled back
    (the old container keeps serving, the new one is removed), recorded as vetoed, and
    ``dso_rotation_rolled_back`` is called with ``event.vetoed_by`` and ``event.error`` set.
    The first veto wins; later extensions are not asked. Return ``None`` (or nothing) to let
    the swap proceed. Raising is *not* a veto: the exception is logged and ignored.
    """


@hookspec
def dso_after_swap(event: RotationEvent) -> None:
    """Called right after the swap: the new container serves under the canonical name.

    The old container is being stopped and removed (``rolling``), or is already gone
    (``restart``); for ``reload``, the files were replaced and the signal sent. Observe only.
    """


@hookspec
def dso_rotation_failed(event: RotationEvent) -> None:
    """Called as soon as a rotation fails, before any rollback: ``event.step`` is the step
    that failed and ``event.error`` says why (health gate diagnostics, Docker's message…).

    Not called for a veto. When no rollback follows (``rollback_on_failure: false``, or the
    failure happened after the point of no return) this is the rotation's last event.
    Observe only.
    """


@hookspec
def dso_rotation_rolled_back(event: RotationEvent) -> None:
    """Called when a rollback has finished: the old container serves again, untouched, and the
    new one was removed. ``event.error`` says why; after a veto ``event.vetoed_by`` names the
    extension. A terminal event. Observe only.
    """


@hookspec
def dso_rotation_completed(event: RotationEvent) -> None:
    """Called when a rotation has succeeded: the new container serves, the old one is removed
    (or, for ``reload``, the container re-read its files). A terminal event. Observe only.
    """


@hookspec
def dso_shutdown() -> None:
    """Called once when dso stops (the agent exits, or a command that rotated ends).

    Flush and stop background work within a few seconds (the built-in webhook delivers what
    is queued, up to its deadline). No event argument: no rotation is in progress.
    """
