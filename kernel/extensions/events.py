"""What lifecycle hooks receive: :class:`RotationEvent`, metadata about one rotation, never values.

Every field is text, a number, a flag, a tuple of text or a text-to-text mapping, and
construction refuses anything else, so a :class:`~kernel.secret_value.SecretValue` (or raw
bytes) cannot reach an extension even by mistake. The rotation engine builds one event per
rotation and derives the next with :meth:`RotationEvent.evolve` as the rotation advances.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: Event names, in lifecycle order; hook ``dso_<name>`` announces event ``<name>``.
EVENT_NAMES = (
    "rotation_planned",
    "rotation_started",
    "before_swap",
    "after_swap",
    "rotation_failed",
    "rotation_rolled_back",
    "rotation_completed",
)


def new_trace_id() -> str:
    """A fresh trace id: 32 lowercase hex digits, the W3C trace-context shape."""
    return secrets.token_hex(16)


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RotationEvent:
    """Metadata about one rotation at one point of its lifecycle (docs/extension-hooks.md).

    Secret *values* are never part of an event: only reference strings, provider version ids
    and fingerprints (short one-way digests computed by the engine).
    """

    #: Correlates every log line, journal entry, hook call and notification of the rotation.
    trace_id: str
    #: The rotation's id in the journal (``state/rotations.json``).
    rotation_id: str
    #: Name of the container being rotated (``shop-web-1``; a compose service's replicas
    #: rotate one by one, each its own event series).
    target: str
    #: ``rolling``, ``restart``, ``reload`` or ``none`` (the strategy actually used).
    strategy: str
    #: Journal step the rotation is at (``plan``, ``create``, ``health``, ``swap``…).
    step: str = ""
    #: Compose project of ``target``, when it belongs to one.
    project: str | None = None
    #: Compose service of ``target`` (``web``), when it belongs to one.
    service: str | None = None
    #: Why the rotation runs: ``manual`` (a CLI command), ``watch`` (a secret changed),
    #: ``recover`` (finishing an interrupted rotation), ``forced``.
    trigger: str = "manual"
    #: Who asked for it, when not dso itself (``uid=1000(alice)`` for a CLI call to the agent).
    actor: str | None = None
    #: ``--dry-run``: only ``dso_rotation_planned`` is called, nothing is changed.
    dry_run: bool = False
    #: Id of the container being replaced (``None`` before it is known).
    old_container: str | None = None
    #: Id of the replacement container (``None`` until created; ``reload`` never has one).
    new_container: str | None = None
    #: Secret references the target uses that changed (``dso://vault/app/db#password``).
    references: tuple[str, ...] = ()
    #: Reference → provider version id of the value being rolled out.
    versions: Mapping[str, str] = field(default_factory=_empty)
    #: Reference → fingerprint (one-way digest) of the value being rolled out.
    fingerprints: Mapping[str, str] = field(default_factory=_empty)
    #: Why the rotation failed, rolled back or was vetoed; ``None`` otherwise.
    error: str | None = None
    #: The extension that vetoed the swap (``dso_rotation_rolled_back`` after a veto).
    vetoed_by: str | None = None
    #: When the rotation began (Unix time, seconds).
    started_at: float = field(default_factory=time.time)
    #: When this event happened (Unix time, seconds).
    occurred_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__  # the dataclass is frozen: normalise in place, once
        setattr_(self, "references", tuple(self.references))
        setattr_(self, "versions", MappingProxyType(dict(self.versions)))
        setattr_(self, "fingerprints", MappingProxyType(dict(self.fingerprints)))
        check_metadata_only(self)

    @property
    def duration(self) -> float:
        """Seconds from the start of the rotation to this event."""
        return max(0.0, self.occurred_at - self.started_at)

    def evolve(self, **changes: Any) -> RotationEvent:
        """A copy with ``changes`` applied, stamped now unless ``occurred_at`` is given."""
        changes.setdefault("occurred_at", time.time())
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The event as JSON-safe data (what the audit log and the webhook carry)."""
        doc: dict[str, Any] = {}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, Mapping):
                value = dict(sorted(value.items()))
            elif isinstance(value, tuple):
                value = list(value)
            doc[spec.name] = value
        doc["duration"] = round(self.duration, 6)
        return doc


@dataclass(frozen=True, slots=True)
class Veto:
    """An extension refused a swap in ``dso_before_swap``; the rotation is rolled back."""

    #: Name of the extension that vetoed.
    extension: str
    #: Its reason, as it returned it.
    reason: str

    def __str__(self) -> str:
        return f"vetoed by extension {self.extension!r}: {self.reason}"


_TEXT = (str,)
_OPTIONAL_TEXT = (str, type(None))
_NUMBER = (int, float)
_KINDS: dict[str, tuple[type, ...]] = {
    "trace_id": _TEXT,
    "rotation_id": _TEXT,
    "target": _TEXT,
    "strategy": _TEXT,
    "step": _TEXT,
    "project": _OPTIONAL_TEXT,
    "service": _OPTIONAL_TEXT,
    "trigger": _TEXT,
    "actor": _OPTIONAL_TEXT,
    "dry_run": (bool,),
    "old_container": _OPTIONAL_TEXT,
    "new_container": _OPTIONAL_TEXT,
    "error": _OPTIONAL_TEXT,
    "vetoed_by": _OPTIONAL_TEXT,
    "started_at": _NUMBER,
    "occurred_at": _NUMBER,
}


def check_metadata_only(event: RotationEvent) -> None:
    """Raise :class:`TypeError` unless every field of ``event`` holds plain metadata.

    Text fields must be ``str`` (a ``SecretValue`` is not), so a value cannot slip in; called
    on construction and again by the facade before any extension sees the event.
    """
    for spec in dataclasses.fields(event):
        value = getattr(event, spec.name)
        if spec.name == "references":
            ok = isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        elif spec.name in ("versions", "fingerprints"):
            ok = isinstance(value, Mapping) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            )
        else:
            ok = isinstance(value, _KINDS[spec.name])
        if not ok:
            # Name the field and the type only: the value may be exactly what must not leak.
            raise TypeError(
                f"RotationEvent.{spec.name} must hold metadata ({_describe(spec.name)}), "
                f"not {type(value).__name__}; hooks never receive secret values"
            )
    if not event.trace_id:
        raise TypeError("RotationEvent.trace_id must not be empty")


def _describe(name: str) -> str:
    if name == "references":
        return "a tuple of reference strings"
    if name in ("versions", "fingerprints"):
        return "a mapping of reference to text"
    return " or ".join("None" if k is type(None) else k.__name__ for k in _KINDS[name])
