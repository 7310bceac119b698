"""Test-only fault injection: die by SIGKILL right after journaling a given step.

``DSO_FAULT_KILL_AFTER_STEP=<step>`` (a :class:`~kernel.rotation.states.Step` value such as
``rename_old``) makes the rotating process kill itself with SIGKILL immediately after the journal
entry announcing that step is durable, before the step is taken. It is ignored unless
``DSO_TEST_MODE=1`` is also set, so a stray variable in production cannot take a service down.
``<step>@<n>`` dies the n-th time the process journals that step (replicas rotating side by side:
``rename_old@3`` dies with the canary done and others in flight).
The crash tests (tests/integration/test_rotation_crash.py) kill at every step and check that
``docker dso recover`` converges. Documented in docs/rotation.md.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Mapping

KILL_AFTER_STEP_ENV = "DSO_FAULT_KILL_AFTER_STEP"
TEST_MODE_ENV = "DSO_TEST_MODE"

_seen: Counter[str] = Counter()
_seen_lock = threading.Lock()


def kill_step(env: Mapping[str, str] | None = None) -> str | None:
    """The step to die after, when fault injection is armed; else None."""
    env = os.environ if env is None else env
    if env.get(TEST_MODE_ENV) != "1":
        return None
    return env.get(KILL_AFTER_STEP_ENV) or None


def after_journaled(step: str) -> None:
    """Die here if armed for ``step`` (no clean-up, no flush: like a crash)."""
    armed = kill_step()
    if armed is None:
        return
    name, _, nth = armed.partition("@")
    if name != step:
        return
    with _seen_lock:
        _seen[step] += 1
        count = _seen[step]
    if count == (int(nth) if nth.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
