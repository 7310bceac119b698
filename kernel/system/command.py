"""Running a host tool (systemctl, journalctl, groupadd, …) and reading what it printed."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

__all__ = ["run_captured"]


def run_captured(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` without a terminal, stdin closed, its output captured as text, whatever its
    exit status. Raises ``FileNotFoundError`` when the program is missing and
    ``subprocess.TimeoutExpired`` when it does not finish within ``timeout`` seconds."""
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
