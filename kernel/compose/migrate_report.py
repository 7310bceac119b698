"""How ``docker dso migrate`` shows its plan: text lines and the ``--json`` document.

Both name secrets, variables, rules and ``file:line`` places, never a value, nor the text of a
compose entry (a ``${VAR:-default}`` default may be the secret).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernel.compose.migrate_interp import EnvLine
from kernel.compose.migrate_plan import Note, Plan, ProposedSecret, Use
from kernel.errors import DSOError

Show = Callable[[Path], str]
#: How the text plan names what the vault does with a secret.
_ACTIONS = {"created": "new", "updated": "replaces a different value", "unchanged": "in the vault"}


@dataclass(frozen=True, slots=True)
class VaultState:
    """What the local vault would do with one secret (from a dry-run ``set_many``)."""

    action: str
    version: int


@dataclass(slots=True)
class Report:
    """A plan with everything the CLI worked out around it."""

    plan: Plan
    #: Compose file → the new file written for it, and how many references it gets.
    outputs: dict[Path, tuple[Path, int]]
    unused: list[tuple[EnvLine, str]]
    #: Secret name → vault state; empty when the vault could not be read.
    vault: dict[str, VaultState] = field(default_factory=dict)
    problems: list[DSOError] = field(default_factory=list)
    dry_run: bool = True
    applied: bool = False


def text_lines(report: Report, show: Show) -> list[str]:
    """The plan as lines for stdout."""
    plan = report.plan
    lines: list[str] = []
    for secret in plan.secrets:
        state = report.vault.get(secret.name)
        action = f" ({_ACTIONS.get(state.action, state.action)})" if state else ""
        origins = " and ".join(f"{show(o.file)}:{o.line}" for o in secret.origins)
        lines.append(f"secret {secret.name}{action}: {secret.match.why}; value from {origins}")
        lines += [f"  {_use(use, secret, show)}" for use in secret.uses]
    for note in sorted([*plan.kept, *plan.skipped], key=lambda n: (str(n.file), n.line)):
        lines.append(f"left alone: {_note(note, show)}")
    for line, variable in report.unused:
        lines.append(f"unused after migration: {show(line.file)}:{line.line}: {variable}")
    for source, (output, count) in report.outputs.items():
        lines.append(
            f"{'wrote' if report.applied else 'write'}: {show(output)} "
            f"(from {show(source)}, {count} reference{'' if count == 1 else 's'})"
        )
    return lines


def _use(use: Use, secret: ProposedSecret, show: Show) -> str:
    text = f"{show(use.file)}:{use.line}: service {use.service}, {use.variable} -> "
    text += secret.reference
    if use.item is None and use.env_file is not None:
        text += f" (added to environment; was in env_file {show(use.env_file)})"
    return text


def _note(note: Note, show: Show) -> str:
    return f"{show(note.file)}:{note.line}: service {note.service}, {note.variable}: {note.reason}"


def document(report: Report, show: Show, delivery: str) -> dict[str, Any]:
    """The ``--json`` document: the same plan, never a value."""
    plan = report.plan
    return {
        "project": plan.project,
        "dry_run": report.dry_run,
        "applied": report.applied,
        "delivery": delivery,
        "compose_files": [show(t.path) for t in plan.files],
        "env_files": [show(p) for p in (*plan.dotenv, *plan.env_files)],
        "outputs": [
            {"source": show(source), "output": show(output), "references": count}
            for source, (output, count) in report.outputs.items()
        ],
        "secrets": [_secret_json(s, report.vault, show) for s in plan.secrets],
        "kept": [_note_json(n, show) for n in plan.kept],
        "skipped": [_note_json(n, show) for n in plan.skipped],
        "unused_lines": [
            {"file": show(line.file), "line": line.line, "variable": variable}
            for line, variable in report.unused
        ],
        "warnings": list(plan.warnings),
        "problems": [problem_json(p) for p in report.problems],
    }


def _secret_json(
    secret: ProposedSecret, vault: Mapping[str, VaultState], show: Show
) -> dict[str, Any]:
    state = vault.get(secret.name)
    return {
        "name": secret.name,
        "reference": secret.reference,
        "action": state.action if state else None,
        "version": state.version if state else None,
        "rule": secret.match.rule,
        "why": secret.match.why,
        "origins": [
            {"kind": str(o.kind), "file": show(o.file), "line": o.line, "variable": o.variable}
            for o in secret.origins
        ],
        "uses": [
            {
                "service": use.service,
                "variable": use.variable,
                "file": show(use.file),
                "line": use.line,
                "added": use.item is None,
                "env_file": show(use.env_file) if use.env_file else None,
            }
            for use in secret.uses
        ],
    }


def _note_json(note: Note, show: Show) -> dict[str, Any]:
    return {
        "service": note.service,
        "variable": note.variable,
        "file": show(note.file),
        "line": note.line,
        "reason": note.reason,
    }


def problem_json(problem: DSOError) -> dict[str, Any]:
    return {
        "error": type(problem).__name__,
        "message": problem.message,
        "hint": problem.hint,
        "exit_code": int(problem.exit_code),
    }
