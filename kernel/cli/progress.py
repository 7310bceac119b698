"""Progress lines on stderr while a command works (rich; plain text when not a terminal).

Messages are printed with markup and highlighting off: references and paths may contain
``[`` and must appear exactly as written. When stderr is not a terminal (and nothing forces
rich to treat it as one) the lines are written without importing rich (~50 ms of ``docker dso
up``), as rich would write them: control codes removed, tabs expanded.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


def plural(count: int, word: str) -> str:
    """``1 secret``, ``3 secrets``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


class Progress:
    """``dso: …`` status lines and a spinner around slow steps."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self._console: Console | None = None
        self._plain = _plain_stderr()

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False, markup=False, emoji=False)
        return self._console

    def line(self, text: str) -> None:
        if not self.quiet:
            self._print(f"dso: {text}")

    def warn(self, text: str) -> None:
        """Warnings are printed even when quiet."""
        self._print(f"warning: {text}")

    def _print(self, text: str) -> None:
        if self._plain:
            sys.stderr.write(text.translate(_CONTROL_CODES).expandtabs(8) + "\n")
            sys.stderr.flush()
        else:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[Timer]:
        """A spinner with ``text`` while the block runs (terminals only); yields its timer."""
        timer = Timer()
        if self.quiet or self._plain or not self.console.is_terminal:
            yield timer
        else:
            from rich.text import Text

            with self.console.status(Text(text), spinner="dots"):
                yield timer
        timer.stop()


#: What rich strips from printed text (rich.control.strip_control_codes).
_CONTROL_CODES = dict.fromkeys((7, 8, 11, 12, 13))


def _plain_stderr() -> bool:
    """True when rich would see stderr as no terminal: not a TTY and neither TTY_COMPATIBLE nor
    FORCE_COLOR (which rich honours) says otherwise."""
    if os.environ.get("TTY_COMPATIBLE", "") in ("0", "1") or "FORCE_COLOR" in os.environ:
        return False
    try:
        return not sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class Timer:
    """Wall time of a step, in milliseconds once stopped."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.end: float | None = None

    def stop(self) -> None:
        self.end = time.perf_counter()

    @property
    def ms(self) -> float:
        return ((self.end or time.perf_counter()) - self.start) * 1000

    def __str__(self) -> str:
        return f"{self.ms:.0f} ms"
