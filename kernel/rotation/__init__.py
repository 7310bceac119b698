"""Rotation: replacing or refreshing the containers that consume a changed secret.

    from kernel.rotation import RotationEngine, label_fetch

    engine = RotationEngine(client, layout, config=config.agent.rotation)
    outcome = engine.rotate("web", label_fetch(resolver), wait=30)

Modules: ``states`` (statuses, steps, transition tables), ``journal`` (state/rotations.json),
``locks`` (one flock per target), ``choose`` (which strategy, and why), ``strategies`` (the
steps of each), ``files`` (secret files on the host tmpfs), ``labels`` (what a container was
given), ``engine`` (plan → fetch → strategy → journal), ``recovery`` (converging interrupted
rotations), ``fault`` (test-only fault injection). User documentation: docs/rotation.md.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from kernel.rotation.engine import RotationEngine, lock_key
    from kernel.rotation.journal import Journal, RotationEntry
    from kernel.rotation.labels import label_fetch
    from kernel.rotation.locks import TargetLocks
    from kernel.rotation.model import (
        ChangedReference,
        Changes,
        NullObserver,
        Outcome,
        Plan,
        RotationObserver,
    )
    from kernel.rotation.recovery import Recovered, recover
    from kernel.rotation.states import RotationStatus, Step, Strategy

__all__ = [
    "ChangedReference",
    "Changes",
    "Journal",
    "NullObserver",
    "Outcome",
    "Plan",
    "Recovered",
    "RotationEngine",
    "RotationEntry",
    "RotationObserver",
    "RotationStatus",
    "Step",
    "Strategy",
    "TargetLocks",
    "label_fetch",
    "lock_key",
    "recover",
]

#: Name → module: the engine is imported on first use, so that a module of the package (e.g.
#: ``choose`` for ``rotate --help``) does not load it.
_LAZY = {
    "ChangedReference": "kernel.rotation.model",
    "Changes": "kernel.rotation.model",
    "Journal": "kernel.rotation.journal",
    "NullObserver": "kernel.rotation.model",
    "Outcome": "kernel.rotation.model",
    "Plan": "kernel.rotation.model",
    "Recovered": "kernel.rotation.recovery",
    "RotationEngine": "kernel.rotation.engine",
    "RotationEntry": "kernel.rotation.journal",
    "RotationObserver": "kernel.rotation.model",
    "RotationStatus": "kernel.rotation.states",
    "Step": "kernel.rotation.states",
    "Strategy": "kernel.rotation.states",
    "TargetLocks": "kernel.rotation.locks",
    "label_fetch": "kernel.rotation.labels",
    "lock_key": "kernel.rotation.engine",
    "recover": "kernel.rotation.recovery",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kernel.rotation' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
