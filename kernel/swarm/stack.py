"""Rewriting a stack file so that Swarm delivers its ``dsofile://`` secrets.

The file is read as YAML and written back as it was, except in the services that use
references (``docker stack deploy`` itself interpolates ``${VAR}`` and reads every other key):

- a ``dsofile://`` variable becomes the path of its file inside the container (as with compose),
  and the service gets a ``secrets:`` entry mounting the versioned Swarm secret there, owned by
  the service's numeric ``user:`` (else root) with mode 0400;
- the file's top-level ``secrets:`` gets ``dso_<name>: {external: true, name: <versioned>}``;
- ``deploy.update_config`` gets ``order: start-first`` and ``failure_action: rollback`` and
  ``deploy.rollback_config`` ``order: start-first`` unless the file sets them: a rotation is a
  rolling task replacement, and only start-first keeps a task serving while its successor starts;
- a service without ``healthcheck:`` but with the label ``dso.health.exec`` (the command dso's
  own health gate runs) gets it as its healthcheck, so the engine gates the update on it; one
  with neither is warned about (its image may have a HEALTHCHECK: dso does not pull it to see);
- ``deploy.labels`` gets ``dso.refs`` (variable → reference as written).

``dso://`` is refused: a Swarm service's environment is stored in its spec in the clear
(``docker service inspect`` on any manager shows it). Problems name the file and line.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel.compose.files import locate
from kernel.compose.inject import LocatedProblem
from kernel.compose.scan import Problem, Scan, scan_model
from kernel.errors import ComposeError, DSOError
from kernel.labels import HEALTH_EXEC_LABEL, REFS_LABEL
from kernel.reference import SecretReference
from kernel.swarm.secret_versions import logical_name

__all__ = [
    "KEY_PREFIX",
    "MIN_VERSION",
    "StackFile",
    "dump",
    "locate_problems",
    "problems_error",
    "read_stack",
    "rewrite",
]

#: Prefix of the keys dso adds to the file's top-level ``secrets:``.
KEY_PREFIX = "dso_"
#: Compose file format dso writes when the file asks for less (external ``name:`` needs 3.5,
#: ``update_config.order`` 3.4).
MIN_VERSION = "3.8"
#: Mode of the secret files (0400).
FILE_MODE = 0o400
#: Timing of a healthcheck made from the ``dso.health.exec`` label: a new task is ready within
#: seconds (the first check runs one interval after the start), at one check per 2 s after.
EXEC_HEALTHCHECK = {"interval": "2s", "timeout": "5s", "retries": 3}


@dataclass(slots=True)
class StackFile:
    """A stack file as read, with its references and what is wrong with them."""

    path: Path
    stack: str
    document: dict[str, Any]
    scan: Scan
    #: Reference → the key dso adds under the top-level ``secrets:`` (``dso_<name>``).
    keys: dict[SecretReference, str] = field(default_factory=dict)
    problems: list[LocatedProblem] = field(default_factory=list)
    #: The file's name in messages.
    shown: str = ""
    #: Things that work but deserve a look (a service without a healthcheck).
    warnings: list[str] = field(default_factory=list)

    def references(self) -> list[SecretReference]:
        """Every distinct ``dsofile://`` reference, in order of first use."""
        return list(self.keys)

    def services_of(self, ref: SecretReference) -> list[str]:
        return [n for n, s in self.scan.services.items() if ref in s.files.values()]


def read_stack(path: Path, stack: str, *, shown: str | None = None) -> StackFile:
    """Read and check ``path`` for ``stack``; :class:`ComposeError` when it is not a stack file.

    Problems with references are collected in :attr:`StackFile.problems` (``shown``: the file
    name they print, default ``path``).
    """
    import yaml

    shown = shown or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ComposeError(
            f"{shown}: cannot read the stack file: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ComposeError(f"{shown}{line}: {problem}") from None
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict):
        raise ComposeError(
            f"{shown}: not a stack file (no services: mapping)",
            hint="pass the compose file of the stack with -c, e.g. -c stack.yaml",
        )
    scan = scan_model(_model(stack, document))
    found = StackFile(path, stack, document, scan, shown=shown)
    problems = list(scan.problems)
    for name, wanted in scan.services.items():
        for variable, ref in wanted.env.items():
            problems.append(Problem(name, variable, wanted.written[variable], _refuse_env(ref)))
    _assign_keys(found, problems)
    found.problems = _locate(path, shown, problems)
    for name in found.scan.services:
        if found.scan.services[name].files and _healthcheck(document["services"][name]) is None:
            found.warnings.append(
                f"service {name} has no healthcheck in {shown}: unless its image has a "
                "HEALTHCHECK, Swarm counts a new task ready as soon as it starts, and a secret "
                f"change may send requests to a task not yet serving (add a healthcheck, or "
                f"the label {HEALTH_EXEC_LABEL})"
            )
    return found


def _model(stack: str, document: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of the file :func:`scan_model` reads, in the shape ``compose config`` gives."""
    services: dict[str, Any] = {}
    for name, service in (document.get("services") or {}).items():
        if not isinstance(service, Mapping):
            continue
        services[str(name)] = {
            "environment": _as_map(service.get("environment")),
            "labels": _as_map((service.get("deploy") or {}).get("labels"))
            | _as_map(service.get("labels")),
            "user": service.get("user"),
            "image": service.get("image"),
            "volumes": service.get("volumes"),
            "secrets": service.get("secrets"),
        }
    return {"name": stack, "services": services}


def _as_map(value: object) -> dict[str, Any]:
    """A compose ``KEY=value`` list or mapping as a mapping."""
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if isinstance(value, list):
        pairs = (str(item).partition("=") for item in value)
        return {k: (v if sep else None) for k, sep, v in pairs}
    return {}


def _refuse_env(ref: SecretReference) -> DSOError:
    written = ref.uri()
    return ComposeError(
        f"{written}: dso:// cannot be used with Swarm: a service's environment is stored in "
        "its spec in the clear (`docker service inspect` shows it on every manager)",
        hint="deliver it as a file: "
        + written.replace("dso://", "dsofile://", 1)
        + " (the variable then holds the file's path)",
    )


def _assign_keys(found: StackFile, problems: list[Problem]) -> None:
    taken = {str(k) for k in found.document.get("secrets") or {}}
    by_name: dict[str, SecretReference] = {}
    for wanted in found.scan.services.values():
        for ref in wanted.files.values():
            if ref in found.keys:
                continue
            name = logical_name(ref)
            if by_name.get(name, ref) != ref:
                name = f"{name}_{len(by_name) + 1}"
            by_name[name] = ref
            key = KEY_PREFIX + name
            if key in taken:
                problems.append(
                    Problem(
                        wanted.service,
                        None,
                        ref.uri(),
                        ComposeError(
                            f"the file already declares a secret {key!r}, which dso needs "
                            f"for {ref.uri()}",
                            hint=f"rename that secret: names starting with {KEY_PREFIX} are dso's",
                        ),
                    )
                )
            found.keys[ref] = key


def locate_problems(found: StackFile, problems: Sequence[Problem]) -> list[LocatedProblem]:
    """``problems`` of ``found`` (e.g. references that did not resolve) with file and line."""
    return _locate(found.path, found.shown or str(found.path), problems)


def _locate(path: Path, shown: str, problems: Sequence[Problem]) -> list[LocatedProblem]:
    located = []
    for problem in problems:
        where = locate([path], problem.service, problem.variable) if problem.variable else None
        located.append(LocatedProblem(shown, where[1] if where else None, problem))
    return sorted(located, key=lambda p: (p.line is None, p.line or 0))


def problems_error(stack: str, problems: Sequence[LocatedProblem]) -> DSOError:
    """One error: the first problem's class and exit code, every problem listed."""
    first = problems[0].problem.error
    combined = copy.copy(first)
    if len(problems) == 1:
        combined.message, combined.hint = str(problems[0]), first.hint
    else:
        combined.message = f"{len(problems)} problems with secret references in stack {stack}:"
        for item in problems:
            hint = item.problem.error.hint
            combined.message += f"\n  {item}" + (f"\n    hint: {hint}" if hint else "")
        combined.hint = None
    combined.args = (combined.message,)
    return combined


def rewrite(found: StackFile, names: Mapping[SecretReference, str]) -> dict[str, Any]:
    """The document with every reference replaced (module docstring); ``names`` maps each
    reference to its versioned Swarm secret name."""
    if found.problems:
        raise problems_error(found.stack, found.problems)
    document = copy.deepcopy(found.document)
    if _version_below(document.get("version"), MIN_VERSION):
        document = {"version": MIN_VERSION, **{k: v for k, v in document.items() if k != "version"}}
    top = document.get("secrets")
    if not isinstance(top, dict):
        top = document["secrets"] = {}
    for ref, key in found.keys.items():
        top[key] = {"external": True, "name": names[ref]}
    for name, wanted in found.scan.services.items():
        # Its own copy: services written with one YAML anchor (`a: *app`, `b: *app`) share one
        # node, which must not get every service's entries.
        service = document["services"][name] = copy.deepcopy(document["services"][name])
        _set_paths(service, {v: wanted.file_path(v) for v in wanted.files})
        owner = wanted.owner
        assert owner is not None, "scan problems are raised above"
        entries = service.get("secrets")
        if not isinstance(entries, list):
            entries = service["secrets"] = []
        for variable, ref in wanted.files.items():
            entries.append(
                {
                    "source": found.keys[ref],
                    "target": wanted.file_path(variable),
                    "uid": str(owner.uid),
                    "gid": str(owner.gid),
                    "mode": FILE_MODE,
                }
            )
        health = _healthcheck(service)
        if health is not None and "healthcheck" not in service:
            service["healthcheck"] = health
        deploy = service.get("deploy")
        if not isinstance(deploy, dict):
            deploy = service["deploy"] = {}
        update = deploy.setdefault("update_config", {})
        update.setdefault("order", "start-first")
        update.setdefault("failure_action", "rollback")
        deploy.setdefault("rollback_config", {}).setdefault("order", "start-first")
        refs = json.dumps(wanted.written, sort_keys=True)
        labels = deploy.get("labels")
        if isinstance(labels, list):
            labels[:] = [x for x in labels if not str(x).startswith(REFS_LABEL + "=")]
            labels.append(f"{REFS_LABEL}={refs}")
        else:
            deploy["labels"] = {**(labels or {}), REFS_LABEL: refs}
    return document


def dump(document: Mapping[str, Any]) -> str:
    """The document as YAML for ``docker stack deploy -c -``."""
    import yaml

    return str(yaml.safe_dump(dict(document), sort_keys=False, default_flow_style=False))


def _healthcheck(service: Mapping[str, Any]) -> dict[str, Any] | None:
    """The service's healthcheck: its own, else one from its ``dso.health.exec`` label (what
    dso's health gate would run; the engine runs it in every task), else None."""
    own = service.get("healthcheck")
    if isinstance(own, Mapping):
        return None if own.get("disable") else dict(own)
    labels = _as_map((service.get("deploy") or {}).get("labels")) | _as_map(service.get("labels"))
    raw = labels.get(HEALTH_EXEC_LABEL)
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        command = json.loads(raw)
    except ValueError:
        command = None
    if isinstance(command, list) and command and all(isinstance(c, str) for c in command):
        test = ["CMD", *command]
    else:
        test = ["CMD-SHELL", raw]
    return {"test": test, **EXEC_HEALTHCHECK}


def _set_paths(service: dict[str, Any], paths: Mapping[str, str]) -> None:
    environment = service.get("environment")
    if isinstance(environment, dict):
        for variable, path in paths.items():
            environment[variable] = path
    elif isinstance(environment, list):
        for i, item in enumerate(environment):
            variable = str(item).partition("=")[0]
            if variable in paths:
                environment[i] = f"{variable}={paths[variable]}"


def _version_below(version: object, minimum: str) -> bool:
    if version is None:
        return True
    try:
        have = tuple(int(p) for p in str(version).split("."))
    except ValueError:
        return False
    return have < tuple(int(p) for p in minimum.split("."))
