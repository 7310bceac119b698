"""Test-only fault injection: die by SIGKILL right after journaling a given step.

``DSO_FAULT_KILL_AFTER_STEP=<step>`` (a :class:`~kernel.rotation.states.Step` value such as
``rename_old``) makes the rotating process kill itself with SIGKILL immediately after the journal
entry announcing that step is durable, before the step is taken. It is ignored unless
``DSO_TEST_MODE=1`` is also set, so a stray variable in production cannot take a service down.
The crash tests (tests/integration/test_rotation_crash.py) kill at every step and check that
``docker dso recover`` converges. Documented in docs/rotation.md.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

KILL_AFTER_STEP_ENV = "DSO_FAULT_KILL_AFTER_STEP"
TEST_MODE_ENV = "DSO_TEST_MODE"


def kill_step(env: Mapping[str, str] | None = None) -> str | None:
    """The step to die after, when fault injection is armed; else None."""
    env = os.environ if env is None else env
    if env.get(TEST_MODE_ENV) != "1":
        return None
    return env.get(KILL_AFTER_STEP_ENV) or None


def after_journaled(step: str) -> None:
    """Die here if armed for ``step`` (no clean-up, no flush: like a crash)."""
    if kill_step() == step:
        os.kill(os.getpid(), signal.SIGKILL)
