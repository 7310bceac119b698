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
