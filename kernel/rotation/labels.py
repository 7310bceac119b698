"""What a container was given, from its labels, and what it should have now, from a resolver.

dso labels every container it injects (:mod:`kernel.compose.rewrite`): ``dso.refs`` maps each
variable to its reference as written, ``dso.versions`` maps it to the ``provider:version`` it
received. :func:`label_fetch` turns a :class:`~kernel.injection.resolver.Resolver` into the
engine's ``fetch``: it resolves the references of the container, and every variable whose
version moved is a change. The new container gets an updated ``dso.versions`` label, so the next
check compares against what it really holds, and, for a compose container whose project was
read, a renewed ``com.docker.compose.config-hash`` so the next ``docker dso up`` keeps it
(:mod:`kernel.compose.confighash`).

:class:`MemoResolver` asks its resolver once per reference: a service's replicas are planned
from one fetch of all their references, and all get the same versions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from kernel.containers.view import ContainerView
from kernel.errors import RotationError
from kernel.injection.resolver import Outcome, Resolver, require
from kernel.labels import REFS_LABEL, VERSIONS_LABEL
from kernel.reference import Delivery, SecretReference, parse_reference
from kernel.rotation.model import ChangedReference, Changes, Fetch
from kernel.rotation.targets import compose_identity
from kernel.secret_value import SecretValue

if TYPE_CHECKING:
    from kernel.compose.confighash import ComposeHasher

#: The plan's note for a compose container whose project was not read.
NO_PROJECT = (
    "compose: the project was not read (run rotate in its directory, or pass -f/-p), so the "
    "next `docker dso up` will recreate the new container"
)


def references_of(view: ContainerView) -> dict[str, str]:
    """Variable → reference as written, from the ``dso.refs`` label ({} without it)."""
    return _json_label(view, REFS_LABEL)


def versions_of(view: ContainerView) -> dict[str, str]:
    """Variable → ``provider:version`` it was given, from the ``dso.versions`` label."""
    return _json_label(view, VERSIONS_LABEL)


class MemoResolver:
    """A :class:`Resolver` that asks ``inner`` once per reference and remembers the outcome."""

    def __init__(self, inner: Resolver) -> None:
        self.inner = inner
        self._known: dict[SecretReference, Outcome] = {}

    def provider_of(self, ref: SecretReference) -> str:
        return self.inner.provider_of(ref)

    def resolve(self, refs: Sequence[SecretReference]) -> dict[SecretReference, Outcome]:
        missing = [ref for ref in dict.fromkeys(refs) if ref not in self._known]
        if missing:
            self._known.update(self.inner.resolve(missing))
        return {ref: self._known[ref] for ref in refs}

    def prefetch(self, views: Iterable[ContainerView]) -> int:
        """Resolve every reference of ``views`` in one batch; how many distinct ones."""
        refs = {parse_reference(text): None for v in views for text in references_of(v).values()}
        self.resolve(list(refs))
        return len(refs)


def label_fetch(
    resolver: Resolver, *, force: bool = False, hasher: ComposeHasher | None = None
) -> Fetch:
    """A ``fetch`` that resolves a container's labelled references with ``resolver``.

    With ``force`` every reference counts as changed (the container is rotated with the current
    values even if the versions did not move). ``hasher`` (the compose project that was read)
    renews the compose config hash of its containers; other compose containers get a note.
    """

    def fetch(view: ContainerView) -> Changes:
        written = references_of(view)
        if not written:
            return Changes()
        refs = {variable: parse_reference(text) for variable, text in written.items()}
        resolved = require(resolver.resolve(list(dict.fromkeys(refs.values()))))
        given = versions_of(view)
        env: dict[str, SecretValue] = {}
        files: dict[str, SecretValue] = {}
        changed: list[ChangedReference] = []
        unchanged: list[str] = []
        versions: dict[str, str] = {}
        for variable, ref in sorted(refs.items()):
            value = resolved[ref]
            versions[variable] = value.fingerprint
            old = given.get(variable)
            if old == value.fingerprint and not force:
                unchanged.append(written[variable])
                continue
            delivery = "file" if ref.delivery is Delivery.FILE else "env"
            (files if delivery == "file" else env)[variable] = value.value
            changed.append(
                ChangedReference(variable, written[variable], delivery, old, value.fingerprint)
            )
        labels = {VERSIONS_LABEL: json.dumps(versions, separators=(",", ":"), ensure_ascii=False)}
        notes: tuple[str, ...] = ()
        identity = compose_identity(view)
        if changed and identity is not None:
            if hasher is None or hasher.name != identity[0]:
                notes = (NO_PROJECT,)
            else:
                update = hasher.update(identity[1], view.labels, resolved)
                labels.update(update.labels)
                notes = (update.note,)
        return Changes(
            env=env,
            files=files,
            labels=labels,
            references=tuple(changed),
            unchanged=tuple(unchanged),
            notes=notes,
        )

    return fetch


def _json_label(view: ContainerView, label: str) -> dict[str, str]:
    raw = view.labels.get(label)
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in doc.items()
    ):
        raise RotationError(f"{view.name}: label {label} is not a JSON object of strings")
    return dict(doc)
