"""The example session of docs/compose.md ("Migrating an existing project") is what users see."""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

from tests.conftest import RunDso

DOC = Path(__file__).resolve().parents[2] / "docs" / "compose.md"


def _session() -> str:
    text = DOC.read_text()
    section = text[text.index("## Migrating an existing project") :]
    return section[section.index("```console\n") + 11 : section.index("\n```\n")]


def _file(session: str, name: str) -> str:
    """The output of ``$ cat NAME`` in the session."""
    start = session.index(f"$ cat {name}\n") + len(f"$ cat {name}\n")
    return session[start : session.index("\n$ ", start)].rstrip("\n") + "\n"


def test_the_documented_session(run_dso: RunDso, dso_home: Path) -> None:
    session = _session()
    project = Path.cwd() / "shop"
    project.mkdir()
    for name in ("compose.yaml", ".env", "api.env"):
        (project / name).write_text(_file(session, name))
    os.chdir(project)
    assert run_dso("init").exit_code == 0
    lines = session.splitlines()

    dry = run_dso("migrate")
    assert dry.exit_code == 0, dry.output
    start = lines.index("$ docker dso migrate                      # a dry run: nothing changes")
    shown = dry.stdout.splitlines() + dry.stderr.splitlines()
    assert lines[start + 1 : start + 1 + len(shown)] == shown

    applied = run_dso("migrate", "--apply")
    assert applied.exit_code == 0, applied.output
    for line in applied.stderr.splitlines():
        assert line in lines, line

    diff = difflib.unified_diff(
        (project / "compose.yaml").read_text().splitlines(),
        (project / "compose.dso.yaml").read_text().splitlines(),
        lineterm="",
        n=0,
    )
    changed = [line for line in diff if re.match(r"[<>+-][^+-]", line)]
    documented = [line for line in lines if line.startswith(("< ", "> "))]
    assert [line[1:] for line in changed] == [line[2:] for line in documented]
