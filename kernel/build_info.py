"""Which commit this dso was built from: a stamp file in frozen builds, else the git checkout.

``os.path`` rather than pathlib: ``docker dso version`` reads it, and pathlib's import (with re,
fnmatch and urllib) would be a tenth of that command's own time.
"""

from __future__ import annotations

import os

_PACKAGE = os.path.dirname(os.path.realpath(__file__))
_STAMP = os.path.join(_PACKAGE, "_commit.txt")


def _read(path: str | os.PathLike[str]) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def commit() -> str:
    """The short commit id, or ``unknown``. Reads files only: no ``git`` subprocess."""
    try:
        return _read(_STAMP).strip()[:12] or "unknown"
    except OSError:
        pass
    git = os.path.join(os.path.dirname(_PACKAGE), ".git")
    try:
        head = _read(os.path.join(git, "HEAD")).strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        ref_file = os.path.join(git, ref)
        if os.path.exists(ref_file):
            return _read(ref_file).strip()[:12]
        for line in _read(os.path.join(git, "packed-refs")).splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except OSError:
        pass
    return "unknown"
