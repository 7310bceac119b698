"""dso's Swarm secrets: versioned names, labels, and which versions tasks still use.

Swarm secrets are immutable, so each value dso delivers is its own secret, named
``<stack>_<name>_<fingerprint>``: ``name`` comes from the reference (``app/db_password`` →
``app_db_password``), ``fingerprint`` is a short digest of the reference and the provider's
version id (``local:3``). The fingerprint never depends on the value, so a secret's name tells
nothing about it (a digest of a short password could be brute-forced by anyone who can list
secrets); a new value has a new version id, hence a new name. The same reference at the same
version always gives the same name: deploying twice creates nothing.

Labels (:mod:`kernel.labels`, ``dso.*``) mark the secrets dso created and say for which stack,
reference and version, so dso finds its own secrets without parsing names. A version may be
removed once no service spec, no service mid-update (it may roll back to it) and no running
task references it (:func:`secrets_in_use`, :func:`remove_unused`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kernel.containers.swarm import (
    create_secret as _create,
)
from kernel.containers.swarm import (
    list_secrets,
    list_services,
    list_tasks,
    remove_secret,
)
from kernel.errors import ConfigError, DockerError, DockerUnavailableError
from kernel.labels import (
    SWARM_MANAGED_LABEL,
    SWARM_NAME_LABEL,
    SWARM_REFERENCE_LABEL,
    SWARM_STACK_LABEL,
    SWARM_VERSION_LABEL,
)

if TYPE_CHECKING:
    import docker

    from kernel.injection.resolver import Resolved
    from kernel.reference import SecretReference
    from kernel.secret_value import SecretValue

__all__ = [
    "FINGERPRINT_LENGTH",
    "MAX_NAME_LENGTH",
    "SecretUse",
    "SwarmSecret",
    "SwarmSecretName",
    "create_secret",
    "dso_secrets",
    "ensure_secret",
    "fingerprint",
    "logical_name",
    "remove_unused",
    "secret_labels",
    "secret_name",
    "secret_uses",
    "secrets_in_use",
]

#: The engine's limit on a secret's name.
MAX_NAME_LENGTH = 64
#: Hex digits of the fingerprint: 40 bits, no collision among a secret's versions in practice.
FINGERPRINT_LENGTH = 10
#: Task states after which a task holds no secret any more.
_TERMINAL_TASK_STATES = frozenset(
    {"complete", "failed", "shutdown", "rejected", "orphaned", "remove"}
)
#: Update states during which the engine may still roll a service back to its previous spec.
_UPDATING_STATES = frozenset({"updating", "paused", "rollback_started", "rollback_paused"})
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class SwarmSecretName:
    """The parts of a versioned secret name (``str()`` gives the name itself)."""

    stack: str
    name: str
    fingerprint: str

    def __str__(self) -> str:
        return f"{self.stack}_{self.name}_{self.fingerprint}"


@dataclass(frozen=True, slots=True)
class SwarmSecret:
    """One of dso's secrets in the engine (metadata only: the engine never returns data)."""

    id: str
    #: The full versioned name.
    name: str
    stack: str
    #: The name without stack and fingerprint (the stack file's secret).
    secret: str
    #: The reference as written.
    reference: str
    #: ``provider:version`` of the value.
    version: str
    #: When the engine created it (RFC 3339).
    created: str

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> SwarmSecret:
        spec = item.get("Spec") or {}
        labels = spec.get("Labels") or {}
        return cls(
            id=str(item.get("ID", "")),
            name=str(spec.get("Name", "")),
            stack=str(labels.get(SWARM_STACK_LABEL, "")),
            secret=str(labels.get(SWARM_NAME_LABEL, "")),
            reference=str(labels.get(SWARM_REFERENCE_LABEL, "")),
            version=str(labels.get(SWARM_VERSION_LABEL, "")),
            created=str(item.get("CreatedAt", "")),
        )


@dataclass(frozen=True, slots=True)
class SecretUse:
    """A service referencing a secret: in its spec, or through its running tasks."""

    service: str
    service_id: str
    secret: str
    #: ``spec`` (the service's current spec), ``previous`` (the spec a running update may roll
    #: back to) or ``task`` (a task not yet shut down, e.g. an old replica mid-update).
    via: str


def logical_name(ref: SecretReference) -> str:
    """The secret's name in a stack: the reference's path (and field), made a safe name."""
    text = ref.path + (f".{ref.field}" if ref.field else "")
    return _UNSAFE.sub("_", text.replace("/", "_")).strip("_.-") or "secret"


def fingerprint(ref: SecretReference, resolved: Resolved) -> str:
    """A short digest of the reference and the provider's version id (never of the value)."""
    digest = hashlib.sha256(f"{ref.uri()}\0{resolved.fingerprint}".encode())
    return digest.hexdigest()[:FINGERPRINT_LENGTH]


def secret_name(stack: str, name: str, fingerprint: str) -> str:
    """``<stack>_<name>_<fingerprint>``, ``name`` shortened to fit the engine's 64 characters.

    :class:`ConfigError` when the stack name alone leaves no room.
    """
    room = MAX_NAME_LENGTH - len(stack) - len(fingerprint) - 2
    if room < 4:
        raise ConfigError(
            f"the stack name {stack!r} is too long for versioned secret names "
            f"(Swarm allows {MAX_NAME_LENGTH} characters for a secret's name)",
            hint=f"use a stack name of at most {MAX_NAME_LENGTH - FINGERPRINT_LENGTH - 6} "
            "characters",
        )
    if len(name) > room:
        short = hashlib.sha256(name.encode()).hexdigest()[:4]
        name = f"{name[: room - 5].rstrip('_.-')}-{short}"
    return str(SwarmSecretName(stack, name, fingerprint))


def secret_labels(
    stack: str, name: str, ref: SecretReference, resolved: Resolved
) -> dict[str, str]:
    """The labels of a secret holding ``resolved`` for ``ref`` in ``stack``."""
    return {
        SWARM_MANAGED_LABEL: "true",
        SWARM_STACK_LABEL: stack,
        SWARM_NAME_LABEL: name,
        SWARM_REFERENCE_LABEL: ref.uri(),
        SWARM_VERSION_LABEL: resolved.fingerprint,
    }


def create_secret(
    client: docker.DockerClient, name: str, value: SecretValue, labels: Mapping[str, str]
) -> SwarmSecret:
    """Create secret ``name`` (through the API: the value never reaches disk or argv).

    Idempotent: an existing secret of that name is returned as it is (same name, same
    reference and version, hence the same value).
    """
    _create(client, name, value, labels)
    found = [s for s in list_secrets(client) if (s.get("Spec") or {}).get("Name") == name]
    if not found:
        raise DockerError(f"the swarm secret {name} was created but is not listed")
    return SwarmSecret.from_api(found[0])


def ensure_secret(
    client: docker.DockerClient,
    stack: str,
    ref: SecretReference,
    resolved: Resolved,
    name: str | None = None,
) -> SwarmSecret:
    """The secret holding ``resolved`` for ``ref`` in ``stack``, created if missing.

    ``name`` is the stack file's secret name (default :func:`logical_name`).
    """
    name = name or logical_name(ref)
    full = secret_name(stack, name, fingerprint(ref, resolved))
    return create_secret(client, full, resolved.value, secret_labels(stack, name, ref, resolved))


def dso_secrets(client: docker.DockerClient, stack: str | None = None) -> list[SwarmSecret]:
    """dso's secrets (of ``stack``, or all), oldest first."""
    labels: dict[str, str | None] = {SWARM_MANAGED_LABEL: "true"}
    if stack is not None:
        labels[SWARM_STACK_LABEL] = stack
    found = [SwarmSecret.from_api(s) for s in list_secrets(client, labels)]
    return sorted(found, key=lambda s: (s.created, s.name))


def secret_uses(client: docker.DockerClient) -> list[SecretUse]:
    """Every reference of a service or a live task to a secret (by secret name)."""
    uses: list[SecretUse] = []
    names: dict[str, str] = {}
    for service in list_services(client):
        sid = str(service.get("ID", ""))
        sname = str((service.get("Spec") or {}).get("Name", sid))
        names[sid] = sname
        for secret in _spec_secrets(service.get("Spec")):
            uses.append(SecretUse(sname, sid, secret, "spec"))
        state = str((service.get("UpdateStatus") or {}).get("State", ""))
        if state in _UPDATING_STATES:
            for secret in _spec_secrets(service.get("PreviousSpec")):
                uses.append(SecretUse(sname, sid, secret, "previous"))
    for task in list_tasks(client):
        status = str((task.get("Status") or {}).get("State", ""))
        if status in _TERMINAL_TASK_STATES:
            continue
        sid = str(task.get("ServiceID", ""))
        for secret in _spec_secrets({"TaskTemplate": task.get("Spec")}):
            uses.append(SecretUse(names.get(sid, sid), sid, secret, "task"))
    return uses


def secrets_in_use(client: docker.DockerClient) -> set[str]:
    """The names of the secrets some service spec, running update or live task references."""
    return {use.secret for use in secret_uses(client)}


def remove_unused(client: docker.DockerClient, names: Iterable[str]) -> list[str]:
    """Remove those of ``names`` nothing uses; the names removed (gone already counts).

    A secret the engine still refuses to remove (a task started in between) is kept for the
    next clean-up, never an error.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return []
    used = secrets_in_use(client)
    removed: list[str] = []
    for name in wanted:
        if name in used:
            continue
        try:
            remove_secret(client, name)
        except DockerUnavailableError:
            raise
        except DockerError:
            continue
        removed.append(name)
    return removed


def _spec_secrets(spec: object) -> list[str]:
    if not isinstance(spec, Mapping):
        return []
    container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    return [str(s["SecretName"]) for s in container.get("Secrets") or () if s.get("SecretName")]
