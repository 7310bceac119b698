"""Keeping ``docker dso up`` from recreating a container that ``rotate`` already updated.

Compose recreates a container when its ``com.docker.compose.config-hash`` label differs from the
hash of the service's configuration in the model (compose's ``ServiceHash``: the service as
JSON, interpolated, without build/scale/depends_on/profiles). dso's model for ``up`` holds the
``dso.versions`` label and, interpolated from compose's environment, the ``dso://`` values, so
after a secret change the hash moves and ``up`` recreates exactly the services concerned. A
rotated container must therefore carry the hash of the model ``up`` will build *with the new
values*: :class:`ComposeHasher` builds that model (:func:`~kernel.compose.rewrite.rewrite_model`
with the values being rolled out) and asks compose itself (``config --hash``,
:func:`~kernel.compose.runner.service_hash`), so the hash is compose's own, whatever its version.

That is only right if nothing else changed: a container created from an older ``compose.yaml``
must still be recreated by the next ``up``. So ``up`` also labels each container with
``dso.config-hash`` (:func:`dso_config_hash`: the rewritten service without secret values,
placeholder names and versions), and the compose hash is renewed only when the project read now
gives the container's ``dso.config-hash``. Otherwise the old compose hash is kept: the next
``up`` recreates the container, as it would have anyway.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.compose.rewrite import rewrite_model
from kernel.compose.runner import service_hash
from kernel.compose.scan import Scan, scan_model, unescape
from kernel.errors import DSOError
from kernel.injection.tmpfs import SecretsDir
from kernel.labels import COMPOSE_HASH_LABEL, CONFIG_HASH_LABEL, REFS_LABEL

if TYPE_CHECKING:
    from kernel.compose.project import Project
    from kernel.injection.resolver import Resolved
    from kernel.reference import SecretReference

__all__ = ["ComposeHasher", "HashUpdate"]


@dataclass(frozen=True, slots=True)
class HashUpdate:
    """Labels for the new container, and a one-line note for the plan (never a value)."""

    labels: Mapping[str, str]
    note: str
    #: True when the next ``docker dso up`` will keep the container.
    kept_by_up: bool


class ComposeHasher:
    """Computes the compose hash a rotated container of ``project`` must carry."""

    def __init__(self, project: Project, secrets_base: Path, owner: str | None = None) -> None:
        self.project = project
        #: The installation labelled on the containers (as ``docker dso up`` labels them).
        self.owner = owner
        # No image lookups: file owners are not part of the model.
        self.scan = scan_model(project.model)
        self.secrets_dir = SecretsDir(secrets_base)
        self._hashes: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    @property
    def name(self) -> str:
        return self.project.name

    def update(
        self,
        service: str,
        labels: Mapping[str, str],
        values: Mapping[SecretReference, Resolved],
    ) -> HashUpdate:
        """The labels for a new container of ``service`` replacing one with ``labels``.

        ``values`` holds a :class:`Resolved` for every reference of the container (the values
        being rolled out). Never raises: a problem keeps the old hash and says why.
        """
        wanted = self.scan.services.get(service)
        if wanted is None or _refs(labels.get(REFS_LABEL)) != wanted.written:
            return _recreate(f"service {service} uses other secret references in the project")
        if any(ref not in values for ref in wanted.references.values()):
            return _recreate(f"not every reference of service {service} was resolved")
        sub = Scan(self.project.name, {service: wanted})
        host_dirs = (
            {service: self.secrets_dir.service_dir(self.project.name, service)}
            if wanted.files
            else {}
        )
        rewritten = rewrite_model(self.project.model, sub, values, host_dirs, owner=self.owner)
        model_labels = rewritten.model["services"][service].get("labels") or {}
        expected = unescape(str(model_labels.get(CONFIG_HASH_LABEL, "")))
        if labels.get(CONFIG_HASH_LABEL) != expected:
            return _recreate(
                f"the project's configuration of service {service} is not the one this "
                "container was created from"
            )
        key = (service, tuple(sorted((ref.uri(), values[ref].fingerprint) for ref in values)))
        digest = self._hashes.get(key)
        if digest is None:
            try:
                digest = service_hash(
                    self.project.name,
                    self.project.files.working_dir,
                    self.project.args,
                    rewritten.model,
                    rewritten.environment,
                    service,
                    cwd=self.project.cwd,
                    env=self.project.env,
                )
            except DSOError as exc:
                return _recreate(exc.message)
            self._hashes[key] = digest
        return HashUpdate(
            {COMPOSE_HASH_LABEL: digest},
            "compose: config hash renewed; `docker dso up` will keep the new container",
            kept_by_up=True,
        )


def _recreate(why: str) -> HashUpdate:
    return HashUpdate(
        {},
        f"compose: the next `docker dso up` will recreate the new container ({why})",
        kept_by_up=False,
    )


def _refs(raw: str | None) -> dict[str, str] | None:
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
