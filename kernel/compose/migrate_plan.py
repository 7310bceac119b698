"""The plan of ``docker dso migrate``: which variables become which secrets, and why.

:func:`build_plan` reads the compose files, the project's ``.env`` and the services'
``env_file:`` files (:mod:`~kernel.compose.migrate_source`), evaluates interpolation
(:mod:`~kernel.compose.migrate_interp`) and applies the rules of
:mod:`~kernel.compose.migrate_detect`. It changes nothing; values stay in
:class:`~kernel.secret_value.SecretValue` and the plan only ever exposes names and places.

Naming: the secret of variable ``VAR`` is ``PREFIX + <project>/VAR``, where ``VAR`` is the
``.env`` variable when the value is exactly one (``POSTGRES_PASSWORD: ${DB_PASSWORD}`` →
``<project>/DB_PASSWORD``), else the compose variable. One name used by several services with
one value is one secret with several references; when the values differ, each service gets
``PREFIX + <project>/<service>/VAR``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from kernel.compose.migrate_detect import Match, classify, name_match, never_secret
from kernel.compose.migrate_interp import DotenvVar, Evaluated, NotLiteral, evaluate
from kernel.compose.migrate_source import (
    ComposeText,
    Dotenv,
    EnvFileRef,
    EnvItem,
    ServiceNodes,
    child,
    read_compose,
    read_dotenv,
    services,
)
from kernel.errors import DSOError, InvalidSecretNameError, InvalidSecretValueError, UsageError
from kernel.reference import Delivery, SecretReference, is_reference
from kernel.secret_value import SecretValue
from kernel.vault.names import validate_name, validate_value

_STR = "tag:yaml.org,2002:str"
_PROJECT_CHARS = re.compile(r"[^a-z0-9_-]")


class OriginKind(StrEnum):
    """Which kind of file a value comes from."""

    #: Text of the compose file itself (a literal, or the default of ``${VAR:-default}``).
    COMPOSE = "compose"
    #: The project's ``.env`` (or ``--env-file``), through interpolation.
    DOTENV = "dotenv"
    #: A service's ``env_file:``.
    ENV_FILE = "env_file"


@dataclass(frozen=True, slots=True)
class Origin:
    """One place a value comes from: ``file:line``."""

    kind: OriginKind
    file: Path
    line: int
    #: The variable assigned there (for a dotenv file: the one interpolated or loaded).
    variable: str


@dataclass(frozen=True, slots=True)
class Use:
    """One variable of one service that will hold the reference."""

    service: str
    variable: str
    #: The compose file edited, and the line of the entry (of the ``env_file`` entry for an
    #: added variable).
    file: Path
    line: int
    #: The entry replaced; None when the variable comes from an ``env_file`` and is added to
    #: the service's ``environment``.
    item: EnvItem | None = field(repr=False)
    nodes: ServiceNodes = field(repr=False)
    #: The ``env_file`` the variable came from, for an added one.
    env_file: Path | None = None


@dataclass(slots=True)
class ProposedSecret:
    """One secret to import, the references replacing its value, and why."""

    name: str
    value: SecretValue = field(repr=False)
    match: Match
    origins: list[Origin]
    uses: list[Use]
    reference: str = ""


@dataclass(frozen=True, slots=True)
class Note:
    """A variable left alone, and why (``already a reference``, ``a number``…)."""

    service: str
    variable: str
    file: Path
    line: int
    reason: str


@dataclass(frozen=True, slots=True)
class Options:
    """The user's choices."""

    prefix: str = ""
    delivery: Delivery = Delivery.ENV
    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()


@dataclass(slots=True)
class Plan:
    """Everything migrate would do; nothing is done yet."""

    project: str
    working_dir: Path
    files: tuple[ComposeText, ...]
    #: The project's ``.env`` files (interpolation) and what they set.
    dotenv: tuple[Path, ...]
    dotenv_vars: dict[str, DotenvVar]
    secrets: list[ProposedSecret] = field(default_factory=list)
    kept: list[Note] = field(default_factory=list)
    skipped: list[Note] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[DSOError] = field(default_factory=list)
    #: Dotenv files read for ``env_file:``, by path (for the unused-lines report).
    env_files: dict[Path, Dotenv] = field(default_factory=dict)


@dataclass(slots=True)
class _Candidate:
    use: Use
    value: SecretValue = field(repr=False)
    origins: list[Origin]
    match: Match
    #: What the secret is named after: the ``.env`` variable when the value is exactly one,
    #: else the compose variable.
    key: str


def build_plan(
    files: Sequence[Path],
    working_dir: Path,
    dotenv_files: Sequence[Path],
    shell: Mapping[str, str],
    options: Options,
    *,
    show: Callable[[Path], str] = str,
) -> Plan:
    """Read the project and decide. ``show`` names a path in messages (relative, usually)."""
    dotenv: dict[str, DotenvVar] = {}
    warnings: list[str] = []
    for path in dotenv_files:
        parsed = read_dotenv(path, show(path))
        dotenv.update(parsed.variables)
        warnings += parsed.warnings
    texts = tuple(read_compose(path, show(path)) for path in dict.fromkeys(files))
    all_services = [svc for text in texts for svc in services(text, working_dir)]
    plan = Plan(
        project_name(texts, working_dir, shell, dotenv),
        working_dir,
        texts,
        tuple(dotenv_files),
        dotenv,
        warnings=warnings,
    )
    candidates: list[_Candidate] = []
    for svc in all_services:
        for item in svc.items:
            found = _from_item(plan, item, svc, shell, dotenv, options)
            if found is not None:
                candidates.append(found)
    added: dict[tuple[str, str], _Candidate] = {}
    declared: dict[str, set[str]] = {}
    for svc in all_services:
        declared.setdefault(svc.name, set()).update(i.variable for i in svc.items)
    for svc in all_services:
        for found in _from_env_files(plan, svc, declared[svc.name], show, options):
            added[(svc.name, found.use.variable)] = found
    candidates += added.values()
    _group(plan, candidates, options, show)
    return plan


def project_name(
    texts: Sequence[ComposeText],
    working_dir: Path,
    shell: Mapping[str, str],
    dotenv: Mapping[str, DotenvVar],
) -> str:
    """Compose's project name: COMPOSE_PROJECT_NAME, else the top-level ``name:``, else the
    project directory's name; lower-cased, keeping ``[a-z0-9_-]``."""
    name = shell.get("COMPOSE_PROJECT_NAME", "")
    if not name and "COMPOSE_PROJECT_NAME" in dotenv:
        name = dotenv["COMPOSE_PROJECT_NAME"].value.reveal_text()
    for text in reversed(texts):
        found = child(text.root, "name") if not name else None
        if found is not None and found[1].tag == _STR:
            evaluated = evaluate(str(found[1].value), shell, dotenv)
            if isinstance(evaluated, Evaluated):
                name = evaluated.value.reveal_text()
    name = name or working_dir.name
    return _PROJECT_CHARS.sub("", name.lower()).lstrip("_-") or "project"


def _note(item: EnvItem, reason: str) -> Note:
    return Note(item.service, item.variable, item.file.path, item.line, reason)


def _from_item(
    plan: Plan,
    item: EnvItem,
    svc: ServiceNodes,
    shell: Mapping[str, str],
    dotenv: Mapping[str, DotenvVar],
    options: Options,
) -> _Candidate | None:
    variable = item.variable
    wanted = variable in options.include or name_match(variable) is not None
    if item.raw is not None and is_reference(item.raw.strip()):
        plan.kept.append(_note(item, "already a reference"))
        return None
    if variable in options.exclude:
        plan.skipped.append(_note(item, "excluded with --exclude"))
        return None
    if item.raw is None:
        evaluated = _passthrough(variable, shell, dotenv)
    elif item.tag != _STR:
        if wanted:
            plan.skipped.append(_note(item, f"a YAML {item.tag.rsplit(':', 1)[-1]}"))
        return None
    else:
        evaluated = evaluate(item.raw, shell, dotenv)
    if isinstance(evaluated, NotLiteral):
        if wanted:
            plan.skipped.append(_note(item, evaluated.reason))
        return None
    match = _decide(variable, evaluated.value, options)
    if isinstance(match, str):
        if match and (wanted or match == "already a reference"):
            plan.skipped.append(_note(item, match))
        return None
    origins = [
        Origin(OriginKind.DOTENV, d.where.file, d.where.line, d.name) for d in evaluated.dotenv
    ]
    if evaluated.uses_compose_text:
        origins.insert(0, Origin(OriginKind.COMPOSE, item.file.path, item.line, variable))
    use = Use(item.service, variable, item.file.path, item.line, item, svc)
    key = variable
    if len(evaluated.dotenv) == 1 and not evaluated.uses_compose_text:
        key = evaluated.dotenv[0].name
        if key in options.exclude:
            plan.skipped.append(_note(item, f"excluded with --exclude (${{{key}}})"))
            return None
    return _Candidate(use, evaluated.value, origins, match, key)


def _passthrough(
    variable: str, shell: Mapping[str, str], dotenv: Mapping[str, DotenvVar]
) -> Evaluated | NotLiteral:
    """``- VAR`` / ``VAR:`` without a value: compose takes it from the shell, then ``.env``."""
    if variable in shell:
        return NotLiteral("no value here: compose takes it from the shell environment")
    found = dotenv.get(variable)
    if found is None:
        return NotLiteral("no value here and none in .env")
    if found.not_literal:
        return NotLiteral(found.not_literal)
    return Evaluated(found.value, (found,), False)


def _decide(variable: str, value: SecretValue, options: Options) -> Match | str:
    try:
        text = value.reveal_text()
    except UnicodeDecodeError:
        return "not UTF-8 text"
    if variable in options.include:
        reason = never_secret(text)
        if reason in ("empty value", "already a reference"):
            return reason
        return Match("include", "named with --include")
    return classify(variable, text)


def _from_env_files(
    plan: Plan,
    svc: ServiceNodes,
    declared: set[str],
    show: Callable[[Path], str],
    options: Options,
) -> list[_Candidate]:
    """Variables an ``env_file`` gives ``svc`` that its ``environment`` does not override."""
    effective: dict[str, tuple[DotenvVar, EnvFileRef]] = {}
    for ref in svc.env_files:
        dotenv = plan.env_files.get(ref.path)
        if dotenv is None:
            if not ref.path.is_file():
                if ref.required:
                    plan.warnings.append(
                        f"{show(svc.file.path)}:{ref.line}: env_file {show(ref.path)} of "
                        f"service {svc.name} does not exist"
                    )
                continue
            dotenv = read_dotenv(ref.path, show(ref.path))
            plan.env_files[ref.path] = dotenv
            plan.warnings += dotenv.warnings
        for name, var in dotenv.variables.items():
            effective[name] = (var, ref)
    found: list[_Candidate] = []
    for name, (var, ref) in effective.items():
        if name in declared:
            continue
        where = Note(svc.name, name, var.where.file, var.where.line, "")
        wanted = name in options.include or name_match(name) is not None
        if name in options.exclude:
            plan.skipped.append(_replace_reason(where, "excluded with --exclude"))
            continue
        if var.not_literal:
            if wanted:
                plan.skipped.append(_replace_reason(where, var.not_literal))
            continue
        match = _decide(name, var.value, options)
        if isinstance(match, str):
            if match and (wanted or match == "already a reference"):
                plan.skipped.append(_replace_reason(where, match))
            continue
        use = Use(svc.name, name, svc.file.path, ref.line, None, svc, ref.path)
        origin = Origin(OriginKind.ENV_FILE, var.where.file, var.where.line, name)
        found.append(_Candidate(use, var.value, [origin], match, name))
    return found


def _replace_reason(note: Note, reason: str) -> Note:
    return Note(note.service, note.variable, note.file, note.line, reason)


def _group(
    plan: Plan, candidates: list[_Candidate], options: Options, show: Callable[[Path], str]
) -> None:
    """Name the secrets: one per distinct value of a variable (see the module docstring)."""
    by_key: dict[str, list[_Candidate]] = {}
    for candidate in candidates:
        by_key.setdefault(candidate.key, []).append(candidate)
    base = f"{options.prefix}{plan.project}/"
    named: dict[str, list[_Candidate]] = {}
    for key, group in by_key.items():
        if all(c.value == group[0].value for c in group):
            named[base + key] = group
            continue
        for candidate in group:
            named.setdefault(f"{base}{candidate.use.service}/{key}", []).append(candidate)
    for name, group in named.items():
        first = group[0]
        if any(c.value != first.value for c in group):
            places = ", ".join(f"{show(c.use.file)}:{c.use.line}" for c in group)
            plan.problems.append(
                UsageError(
                    f"service {first.use.service}, {first.use.variable}: set to different "
                    f"values in {places}",
                    hint="migrate the files one at a time, or --exclude the variable",
                )
            )
            continue
        origins: list[Origin] = []
        for candidate in group:
            origins += [o for o in candidate.origins if o not in origins]
        secret = ProposedSecret(name, first.value, first.match, origins, [c.use for c in group])
        try:
            validate_name(name)
            validate_value(first.value, name=name)
            secret.reference = SecretReference(options.delivery, name).uri()
        except (InvalidSecretNameError, InvalidSecretValueError) as exc:
            use = first.use
            exc.message = f"service {use.service}, {use.variable}: {exc.message}"
            exc.args = (exc.message,)
            plan.problems.append(exc)
            continue
        plan.secrets.append(secret)


def variables_in_use(plan: Plan) -> int:
    """How many (service, variable) pairs the plan turns into references."""
    return sum(len(s.uses) for s in plan.secrets)
