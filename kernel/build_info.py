"""Which commit this dso was built from: a stamp file in frozen builds, else the git checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_STAMP = _PACKAGE / "_commit.txt"


def commit() -> str:
    """The short commit id, or ``unknown``. Reads files only: no ``git`` subprocess."""
    try:
        return _STAMP.read_text().strip()[:12] or "unknown"
    except OSError:
        pass
    git = _PACKAGE.parent / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        ref_file = git / ref
        if ref_file.exists():
            return ref_file.read_text().strip()[:12]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except OSError:
        pass
    return "unknown"
