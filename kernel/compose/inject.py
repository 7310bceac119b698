"""The steps of ``docker dso up`` and ``validate``, each usable and timed on its own.

    load_project  → docker compose config: the model, its name, files and working directory
    scan_project  → the references of each service, and what file delivery needs
    started_services → which services ``up SERVICE…`` starts (only theirs are resolved)
    resolve       → one batch through the Resolver; every failure becomes a Problem
    deliver_files → the dsofile:// files on the tmpfs (atomic ..data swap per service)
    rewrite_model → (kernel.compose.rewrite) placeholders, mounts, labels
    run_with_model→ (kernel.compose.runner) docker compose … -f - up

The CLI drives them so it can show progress between steps; nothing here prints.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernel.compose.args import UpSelection
from kernel.compose.files import locate
from kernel.compose.project import PendingProject as PendingProject
from kernel.compose.project import Project as Project
from kernel.compose.project import load_project as load_project
from kernel.compose.runner import compose_projects, image_user
from kernel.compose.scan import Problem, Scan, scan_model
from kernel.errors import DSOError, InvalidSecretValueError
from kernel.injection.atomic_dir import Owner
from kernel.injection.resolver import Resolved, Resolver
from kernel.injection.tmpfs import SecretsDir
from kernel.reference import SecretReference

#: ``(image, environment) → USER`` (``""``: root by default; None: no such image).
ImageUserLookup = Callable[[str, Mapping[str, str]], str | None]
#: Secret directories of projects without containers are removed after this many idle seconds
#: (a project being built right now has no containers yet).
STALE_GRACE = 300.0
#: Longest value passed as an environment variable (Linux MAX_ARG_STRLEN is 128 KiB).
MAX_ENV_VALUE = 128 * 1024 - 256


def scan_project(project: Project, daemon_user: ImageUserLookup | None = None) -> Scan:
    """The references of ``project``; asks Docker for the ``USER`` of images that need it:
    ``daemon_user`` (the daemon's API, from the CLI layer) if given, else, or when it raises
    :class:`DSOError`, ``docker image inspect``."""
    users: dict[str, str | None] = {}

    def lookup(image: str) -> str | None:
        if image not in users:
            if daemon_user is not None:
                try:
                    users[image] = daemon_user(image, project.env)
                    return users[image]
                except DSOError:
                    pass
            users[image] = image_user(image, project.env)
        return users[image]

    return scan_model(project.model, lookup)


def started_services(model: Mapping[str, Any], selection: UpSelection) -> frozenset[str] | None:
    """The services ``up`` starts: those named and, without ``--no-deps``, everything they
    depend on (compose writes ``links``, ``network_mode: service:…`` and ``volumes_from`` into
    ``depends_on`` too). None means every service: none named, or a name the model does not
    have (compose reports it; dso checks everything, as without names)."""
    services: Mapping[str, Any] = model.get("services") or {}
    if not selection.services or any(s not in services for s in selection.services):
        return None
    started: set[str] = set()
    todo = list(selection.services)
    while todo:
        name = todo.pop()
        if name in started:
            continue
        started.add(name)
        if not selection.no_deps:
            todo += [d for d in services[name].get("depends_on") or {} if d in services]
    return frozenset(started)


def resolve(
    scan: Scan, resolver: Resolver
) -> tuple[dict[SecretReference, Resolved], list[Problem]]:
    """Resolve every reference of ``scan`` in one batch.

    Returns the values that resolved and a :class:`Problem` per variable whose reference did
    not, or whose value cannot travel as an environment variable.
    """
    outcomes = resolver.resolve(scan.references())
    values = {ref: out for ref, out in outcomes.items() if isinstance(out, Resolved)}
    problems: list[Problem] = []
    for name, wanted in scan.services.items():
        for variable, ref in wanted.references.items():
            outcome = outcomes[ref]
            written = wanted.written[variable]
            if isinstance(outcome, DSOError):
                problems.append(Problem(name, variable, written, outcome))
            elif variable in wanted.env:
                error = _env_problem(written, outcome)
                if error is not None:
                    problems.append(Problem(name, variable, written, error))
    return values, problems


def _env_problem(written: str, resolved: Resolved) -> DSOError | None:
    value = resolved.value.reveal()
    why = None
    if len(value) > MAX_ENV_VALUE:
        why = f"is {len(value)} bytes, too large for an environment variable"
    elif b"\0" in value:
        why = "contains a NUL byte, which an environment variable cannot hold"
    else:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            why = "is not UTF-8 text, which an environment variable must be"
    if why is None:
        return None
    return InvalidSecretValueError(
        f"{written}: the value {why}",
        hint="deliver it as a file: " + written.replace("dso://", "dsofile://", 1),
    )


def deliver_files(
    scan: Scan, values: Mapping[SecretReference, Resolved], secrets_dir: SecretsDir
) -> dict[str, Path]:
    """Publish the ``dsofile://`` files of every service; service → its host directory.

    The caller holds ``secrets_dir.locked(scan.project)`` and has called ``prepare()``.
    """
    dirs: dict[str, Path] = {}
    for name, wanted in scan.services.items():
        if not wanted.files:
            continue
        assert wanted.owner is not None, "scan problems must be handled first"
        files = {wanted.file_names[v]: values[ref].value for v, ref in wanted.files.items()}
        owner = file_owner(wanted.owner)
        dirs[name] = secrets_dir.write_service(scan.project, name, files, owner)
    return dirs


def file_owner(wanted: Owner) -> Owner:
    """Who gets the files: the container's user, except root when dso itself is not root.

    An unprivileged dso (a user in the docker group) cannot give files to root; it keeps them,
    and root in the container still reads them through CAP_DAC_OVERRIDE, which Docker grants
    by default. A non-root container user other than dso's own needs dso to run as root.
    """
    if wanted.uid == 0 and os.geteuid() != 0:
        return Owner(os.geteuid(), os.getegid())
    return wanted


@dataclass(frozen=True, slots=True)
class LocatedProblem:
    """A problem with where it is: ``compose.yaml:12: service web, DB_PASSWORD: …``."""

    file: str | None
    line: int | None
    problem: Problem

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        subject = f"service {self.problem.service}"
        if self.problem.variable:
            subject += f", {self.problem.variable}"
        return f"{where}{subject}: {self.problem.message}"

    def to_json(self) -> dict[str, Any]:
        error = self.problem.error
        return {
            "file": self.file,
            "line": self.line,
            "service": self.problem.service,
            "variable": self.problem.variable,
            "reference": self.problem.reference,
            "problem": self.problem.message,
            "hint": error.hint,
            "error": type(error).__name__,
            "exit_code": int(error.exit_code),
        }


def locate_problems(project: Project, problems: Sequence[Problem]) -> list[LocatedProblem]:
    """Attach ``file:line`` to each problem (the first compose file when the line is unknown).

    Sorted by file and line; problems without a line come after those of their file.
    """
    located = []
    for problem in problems:
        where = None
        if problem.variable:
            where = locate(project.files.files, problem.service, problem.variable)
        if where is not None:
            located.append(LocatedProblem(_display(where[0], project.cwd), where[1], problem))
        else:
            first = project.files.files[0] if project.files.files else None
            shown = _display(first, project.cwd) if first else None
            located.append(LocatedProblem(shown, None, problem))
    return sorted(located, key=lambda p: (p.file or "", p.line is None, p.line or 0))


def _display(path: Path, cwd: Path) -> str:
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def problems_error(project: Project, problems: Sequence[LocatedProblem]) -> DSOError:
    """One error for ``up``: the first problem's class and exit code, every problem listed.

    Problems sharing one error (a missing vault for every reference) are listed once.
    """
    first = problems[0].problem.error
    entries: list[tuple[str, str | None]] = []
    seen: set[int] = set()
    for item in problems:
        error = item.problem.error
        if id(error) in seen:
            continue
        seen.add(id(error))
        entries.append((error.message if _is_shared(error, problems) else str(item), error.hint))
    combined = copy.copy(first)
    if len(entries) == 1:
        combined.message, combined.hint = entries[0]
    else:
        combined.message = (
            f"{len(entries)} problems with secret references in project {project.name}:"
        )
        for text, hint in entries:
            combined.message += f"\n  {text}" + (f"\n    hint: {hint}" if hint else "")
        combined.hint = None
    combined.args = (combined.message,)
    return combined


def _is_shared(error: DSOError, problems: Sequence[LocatedProblem]) -> bool:
    return sum(p.problem.error is error for p in problems) > 1


def remove_stale_projects(
    secrets_dir: SecretsDir,
    env: Mapping[str, str],
    *,
    keep: str | None = None,
    grace: float = STALE_GRACE,
    now: float | None = None,
) -> list[str]:
    """Remove secret directories of projects that have no containers and sat idle ``grace`` s.

    Opportunistic: when Docker cannot be asked, nothing is removed and the next run retries.
    """
    now = time.time() if now is None else now
    candidates = [
        p for p in secrets_dir.projects() if p != keep and secrets_dir.idle_for(p, now) > grace
    ]
    if not candidates:
        return []
    try:
        active = compose_projects(env)
    except DSOError:
        return []
    return secrets_dir.remove_stale(candidates, active)
