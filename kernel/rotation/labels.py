"""What a container was given, from its labels, and what it should have now, from a resolver.

dso labels every container it injects (:mod:`kernel.compose.rewrite`): ``dso.refs`` maps each
variable to its reference as written, ``dso.versions`` maps it to the ``provider:version`` it
received. :func:`label_fetch` turns a :class:`~kernel.injection.resolver.Resolver` into the
engine's ``fetch``: it resolves the references of the container, and every variable whose
version moved is a change. The new container gets an updated ``dso.versions`` label, so the next
check compares against what it really holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from kernel.compose.scan import REFS_LABEL, VERSIONS_LABEL
from kernel.containers.view import ContainerView
from kernel.errors import RotationError
from kernel.injection.resolver import Resolver, require
from kernel.reference import Delivery, parse_reference
from kernel.rotation.model import ChangedReference, Changes, Fetch
from kernel.secret_value import SecretValue


def references_of(view: ContainerView) -> dict[str, str]:
    """Variable → reference as written, from the ``dso.refs`` label ({} without it)."""
    return _json_label(view, REFS_LABEL)


def versions_of(view: ContainerView) -> dict[str, str]:
    """Variable → ``provider:version`` it was given, from the ``dso.versions`` label."""
    return _json_label(view, VERSIONS_LABEL)


def label_fetch(resolver: Resolver, *, force: bool = False) -> Fetch:
    """A ``fetch`` that resolves a container's labelled references with ``resolver``.

    With ``force`` every reference counts as changed (the container is rotated with the current
    values even if the versions did not move).
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
        labels = {VERSIONS_LABEL: json.dumps(versions, separators=(",", ":"))}
        return Changes(
            env=env,
            files=files,
            labels=labels,
            references=tuple(changed),
            unchanged=tuple(unchanged),
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
