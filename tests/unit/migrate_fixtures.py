"""The compose projects of tests/unit/fixtures/migrate, copied with a fresh canary."""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures" / "migrate"
#: Written in the fixtures where a secret value holds the canary.
MARKER = b"@CANARY@"


def copy_fixture(name: str, dest: Path, canary: str) -> Path:
    """``fixtures/migrate/<name>`` at ``dest`` (without ``expected*`` files), marker replaced."""
    shutil.copytree(FIXTURES / name, dest, ignore=shutil.ignore_patterns("expected*"))
    for path in dest.rglob("*"):
        if path.is_file():
            path.write_bytes(path.read_bytes().replace(MARKER, canary.encode()))
    return dest


def expected(name: str, file: str = "expected.dso.yaml") -> str:
    return (FIXTURES / name / file).read_text()


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` and its bytes, to prove nothing changed."""
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }
