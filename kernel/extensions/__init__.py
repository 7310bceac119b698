"""Extensions: in-process Python code that observes, and may veto, rotation lifecycle events.

    from kernel.extensions import Extensions, RotationEvent, new_trace_id

    extensions = Extensions.load(layout, config.extensions)   # raises ExtensionError
    veto = extensions.before_swap(event)                       # Veto | None

Modules: ``events`` (:class:`RotationEvent`, metadata only), ``hookspecs`` (the ``dso_*``
hooks), ``manager`` (registration, validation, records), ``loading`` (sources, blocking),
``facade`` (:class:`Extensions`, the one caller of the hooks), ``builtin`` (the ``audit`` log
and the ``webhook`` notifier).
Extension authors need only ``from kernel import hookimpl``; docs/extension-hooks.md.
"""

from __future__ import annotations

from kernel.extensions.events import EVENT_NAMES, RotationEvent, Veto, new_trace_id
from kernel.extensions.facade import HOOK_METHODS, Extensions
from kernel.extensions.hookspecs import hookimpl, hookspec
from kernel.extensions.loading import extensions_dir, load_extensions
from kernel.extensions.manager import (
    DIRECTORY_ENV,
    DISABLE_ENV,
    ENTRY_POINT_GROUP,
    NO_EXTENSIONS_ENV,
    ExtensionManager,
    ExtensionRecord,
    ExtensionStatus,
)

__all__ = [
    "DIRECTORY_ENV",
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "EVENT_NAMES",
    "HOOK_METHODS",
    "NO_EXTENSIONS_ENV",
    "ExtensionManager",
    "ExtensionRecord",
    "ExtensionStatus",
    "Extensions",
    "RotationEvent",
    "Veto",
    "extensions_dir",
    "hookimpl",
    "hookspec",
    "load_extensions",
    "new_trace_id",
]
