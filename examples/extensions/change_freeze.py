"""Refuse container swaps during a change freeze: an example of a vetoing dso extension.

While the file named by ``DSO_CHANGE_FREEZE_FILE`` (default ``/etc/dso/change-freeze``) exists,
every swap is vetoed with the file's first line as the reason: the new container is removed,
the old one keeps serving, and the rotation is recorded as vetoed. Delete the file to lift the
freeze; the next change (or ``docker dso rotate``) rotates as usual.
"""

from __future__ import annotations

import os
from pathlib import Path

from kernel import hookimpl
from kernel.extensions import RotationEvent

DEFAULT_FILE = "/etc/dso/change-freeze"


@hookimpl
def dso_before_swap(event: RotationEvent) -> str | None:
    freeze = Path(os.environ.get("DSO_CHANGE_FREEZE_FILE", DEFAULT_FILE))
    try:
        first_line = freeze.read_text().strip().splitlines()[:1]
    except FileNotFoundError:
        return None  # no freeze: let the swap happen
    reason = first_line[0] if first_line else "no reason given"
    return f"change freeze ({freeze}): {reason}"
