"""Rewriting a compose model so that compose itself delivers the resolved secrets.

Only services that use references change, and in them only what dso owns:

- a ``dso://`` variable becomes ``${DSO_SECRET_<token>_<n>}``: compose interpolates it from its
  own process environment, where :func:`kernel.compose.runner.run_with_model` puts the value. The
  value is never in the model, in argv, or in a file; ``<token>`` is random per run so no compose
  file can name the placeholder;
- a ``dsofile://`` variable becomes the file's path inside the container, and the service gets a
  read-only bind mount of its tmpfs directory there;
- labels ``dso.refs`` (variable → reference as written) and ``dso.versions`` (variable →
  ``provider:version``) record what was injected, never values. A new version changes the
  labels, so ``up`` recreates exactly the containers whose secrets changed;
- label ``dso.config-hash`` digests the rewritten service without values, placeholder names and
  versions: ``rotate`` renews compose's own config hash on the containers it replaces only when
  the project still gives this digest (:mod:`kernel.compose.confighash`).

Everything else is the document compose printed, which is already ``$``-escaped for reading again;
strings dso adds are escaped with :func:`~kernel.compose.scan.escape`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.compose.scan import Scan, escape
from kernel.injection.resolver import Resolved
from kernel.labels import CONFIG_HASH_LABEL, OWNER_LABEL, REFS_LABEL, VERSIONS_LABEL
from kernel.reference import SecretReference
from kernel.secret_value import SecretValue

PLACEHOLDER_PREFIX = "DSO_SECRET_"


@dataclass(frozen=True, slots=True)
class Rewritten:
    """The model to feed to compose, and the environment its process needs."""

    model: dict[str, Any]
    #: Placeholder variable → value, for the compose process's environment only.
    environment: dict[str, SecretValue]


def rewrite_model(
    model: Mapping[str, Any],
    scan: Scan,
    values: Mapping[SecretReference, Resolved],
    host_dirs: Mapping[str, Path],
    *,
    owner: str | None = None,
    token: str | None = None,
) -> Rewritten:
    """The model with every reference of ``scan`` replaced (see the module docstring).

    ``values`` holds a :class:`Resolved` for every reference; ``host_dirs`` the tmpfs directory
    of every service with ``dsofile://`` references; ``owner`` the installation that manages
    the containers (label ``dso.rotation.owner``: its agent rotates them, no other one does).
    ``model`` is not modified.
    """
    token = token or secrets.token_hex(4)
    result = dict(model)
    services = dict(model.get("services") or {})
    environment: dict[str, SecretValue] = {}
    placeholders: dict[SecretReference, str] = {}
    for name, wanted in scan.services.items():
        service = copy.deepcopy(services[name])
        env = dict(service.get("environment") or {})
        for variable, ref in wanted.env.items():
            placeholder = placeholders.get(ref)
            if placeholder is None:
                placeholder = f"{PLACEHOLDER_PREFIX}{token}_{len(placeholders) + 1}"
                placeholders[ref] = placeholder
                environment[placeholder] = values[ref].value
            env[variable] = "${" + placeholder + "}"
        for variable in wanted.files:
            env[variable] = escape(wanted.file_path(variable))
        service["environment"] = env
        if wanted.files:
            service["volumes"] = [
                *(service.get("volumes") or []),
                {
                    "type": "bind",
                    "source": escape(str(host_dirs[name])),
                    "target": escape(wanted.mount_path),
                    "read_only": True,
                    "bind": {"create_host_path": False},
                },
            ]
        refs = dict(sorted(wanted.written.items()))
        versions = {v: values[ref].fingerprint for v, ref in sorted(wanted.references.items())}
        service["labels"] = {
            **(service.get("labels") or {}),
            REFS_LABEL: escape(_compact(refs)),
            VERSIONS_LABEL: escape(_compact(versions)),
        }
        if owner is not None:
            service["labels"][OWNER_LABEL] = owner
        service["labels"][CONFIG_HASH_LABEL] = dso_config_hash(service, wanted.env)
        services[name] = service
    result["services"] = services
    return Rewritten(result, environment)


def _compact(doc: Mapping[str, str]) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def dso_config_hash(service: Mapping[str, Any], env_variables: Iterable[str]) -> str:
    """A digest of a rewritten service without what a rotation changes (``dso.config-hash``).

    Left out: the values of ``env_variables`` (the ``dso://`` placeholders: random names, secret
    values), ``dso.versions``, this label itself, and what compose leaves out of its own hash
    (``build``, ``pull_policy``, ``scale``, ``deploy.replicas``, ``depends_on``, ``profiles``).
    """
    doc: dict[str, Any] = copy.deepcopy(dict(service))
    for key in ("build", "pull_policy", "scale", "depends_on", "profiles"):
        doc.pop(key, None)
    if isinstance(doc.get("deploy"), dict):
        doc["deploy"].pop("replicas", None)
    env = dict(doc.get("environment") or {})
    env.update(dict.fromkeys(env_variables, "${DSO_SECRET}"))
    doc["environment"] = env
    doc["labels"] = {
        k: v
        for k, v in (doc.get("labels") or {}).items()
        if k not in (CONFIG_HASH_LABEL, VERSIONS_LABEL)
    }
    data = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()[:32]
