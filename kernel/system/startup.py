"""Starting the agent's unit and knowing that it started: ``system enable`` and ``system restart``.

``systemctl start`` returns when systemd considers the unit started — for ``Type=notify`` when
the agent said READY=1, for ``Type=simple`` as soon as it forked — so :func:`start_and_verify`
then asks the agent itself: it waits until the unit's process answers ``health`` on its socket
and is live, and fails as soon as the unit fails, exits (``Restart=on-failure`` would try again
in ``RestartSec``) or the time is up. A failure carries the journal lines of the runs it caused
(:func:`startup_lines`), so the operator sees why without a second command.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kernel.agent.api.client import AgentClient
from kernel.errors import AgentError, AgentRequestError, AgentUnavailableError
from kernel.system.journal import JournalEntry, invocation_matches, read_journal
from kernel.system.service import Systemctl, UnitState

__all__ = ["POLL", "Startup", "start_and_verify", "startup_lines"]

#: Seconds between two looks at the unit and the socket while waiting.
POLL = 0.1
#: Journal entries read to pick the lines shown when the start failed.
JOURNAL_SCAN = 200
#: Lines shown.
JOURNAL_SHOWN = 10
#: journald's ``err``: what ``-p err`` shows (0 to 3).
ERR = 3


@dataclass(frozen=True, slots=True)
class Startup:
    """How a start ended: healthy after ``seconds``, or not, and why."""

    ok: bool
    #: From the ``systemctl`` call to the first live health answer (or to the failure).
    seconds: float
    #: The unit when it was seen last.
    unit: UnitState
    #: Why not (one line), None when healthy.
    reason: str | None = None
    #: The agent's health answer (version, pid, uptime) when it answered.
    health: dict[str, object] = field(default_factory=dict)
    #: The unit was running before and ``start`` changed nothing.
    already_running: bool = False
    #: Runs of the unit since the command began (``_SYSTEMD_INVOCATION_ID``), oldest first.
    invocations: tuple[str, ...] = ()


def start_and_verify(
    systemctl: Systemctl,
    action: str,
    *,
    socket: Path,
    timeout: float,
    progress: Callable[[str], None] = lambda _text: None,
    poll: float = POLL,
) -> Startup:
    """``systemctl <action>`` (``start`` or ``restart``), then wait until the unit's agent is
    live on ``socket``; a failed or stuck unit ends the wait at once. ``progress`` gets a line
    each time what is awaited changes."""
    before = systemctl.show()
    if before.active_state == "failed" or before.sub_state == "auto-restart":
        # Else a start after too many failures is refused ("Start request repeated too
        # quickly") until StartLimitIntervalSec has passed, even with the cause fixed.
        systemctl.reset_failed()
    already = action == "start" and before.running
    began = time.monotonic()
    deadline = began + timeout
    progress(f"{action}ing {systemctl.unit} (systemctl {action})")
    failed = systemctl.start(timeout) if action == "start" else systemctl.restart(timeout)
    waiter = _Waiter(systemctl, before, already, socket, began, progress)
    while failed is None:
        done = waiter.look()
        if done is not None:
            return done
        if time.monotonic() >= deadline:
            failed = f"not healthy within {timeout:g} s: {waiter.waiting_for}"
            break
        time.sleep(poll)
    unit = systemctl.show()
    waiter.saw(unit)
    if waiter.fresh(unit) and unit.exited:
        failed = exit_reason(unit)  # clearer than systemctl's "Job for … failed because …"
    return Startup(
        ok=False,
        seconds=time.monotonic() - began,
        unit=unit,
        reason=failed,
        already_running=already,
        invocations=tuple(waiter.invocations),
    )


def exit_reason(unit: UnitState) -> str:
    """Why a run that ended is not an agent that answers."""
    reason = f"the agent exited before it was healthy: {unit.how_it_ended()}"
    if unit.sub_state == "auto-restart":
        reason += " (systemd starts it again after RestartSec)"
    return reason


class _Waiter:
    """One look at the unit and the socket per call, remembering what it saw."""

    def __init__(
        self,
        systemctl: Systemctl,
        before: UnitState,
        already: bool,
        socket: Path,
        began: float,
        progress: Callable[[str], None],
    ) -> None:
        self.systemctl = systemctl
        self.before = before
        self.already = already
        self.client = AgentClient(socket, timeout=2.0)
        self.began = began
        self.progress = progress
        self.invocations: list[str] = []
        self.waiting_for = "the unit to start"
        self._said = ""

    def fresh(self, unit: UnitState) -> bool:
        """``unit`` is a run this command started (or the one it found running)."""
        if not unit.invocation_id:
            return False
        return self.already or unit.invocation_id != self.before.invocation_id

    def saw(self, unit: UnitState) -> None:
        if self.fresh(unit) and unit.invocation_id not in self.invocations:
            self.invocations.append(unit.invocation_id)

    def look(self) -> Startup | None:
        unit = self.systemctl.show()
        self.saw(unit)
        elapsed = time.monotonic() - self.began
        fresh = self.fresh(unit)
        if fresh and unit.exited:
            return self._failed(exit_reason(unit), unit)
        if not (fresh and unit.running):
            self._say(f"{self.systemctl.unit} is {unit.state}", "the unit to start")
            return None
        try:
            health = self.client.call("health")
        except AgentUnavailableError as exc:
            self._say(
                f"{self.systemctl.unit} is {unit.state}, pid {unit.main_pid}: waiting for the "
                f"agent's socket {self.client.path}",
                f"the agent to answer on {self.client.path} ({exc.message})",
            )
            return None
        except AgentRequestError as exc:
            problems = self._problems() if exc.status == 503 else exc.message
            self._say(
                f"the agent answers but is not live yet: {problems}",
                f"the agent to be live ({problems})",
            )
            return None
        if not isinstance(health, dict) or not self._from_this_run(health, unit, elapsed):
            self._say("the previous agent still answers on the socket", "the new agent to answer")
            return None
        return Startup(
            ok=True,
            seconds=elapsed,
            unit=unit,
            health=health,
            already_running=self.already,
            invocations=tuple(self.invocations),
        )

    def _from_this_run(self, health: dict[str, object], unit: UnitState, elapsed: float) -> bool:
        """The answer comes from the unit's process (not the agent being replaced)."""
        if self.already or health.get("pid") == unit.main_pid:
            return True
        uptime = health.get("uptime_seconds")
        return isinstance(uptime, int | float) and uptime <= elapsed + 1.0

    def _problems(self) -> str:
        try:
            doc = self.client.call("status")
            problems = doc["agent"]["health"]["problems"]
            return "; ".join(str(p) for p in problems) or "still starting"
        except (AgentError, KeyError, TypeError):
            return "still starting"

    def _failed(self, reason: str, unit: UnitState) -> Startup:
        return Startup(
            ok=False,
            seconds=time.monotonic() - self.began,
            unit=unit,
            reason=reason,
            already_running=self.already,
            invocations=tuple(self.invocations),
        )

    def _say(self, text: str, waiting_for: str) -> None:
        self.waiting_for = waiting_for
        if text != self._said:
            self._said = text
            self.progress(text)


def startup_lines(
    invocations: Sequence[str], *, since: float | None = None, unit: str | None = None
) -> tuple[list[JournalEntry], str | None]:
    """The journal lines that say why a start failed, and a note when the journal could not
    be read. The runs ``invocations`` (else everything since the Unix time ``since``)."""
    from kernel.system.unit import UNIT_NAME

    matches = invocation_matches(invocations)
    after = f"@{int(since)}" if not matches and since is not None else None
    read = read_journal(unit or UNIT_NAME, lines=JOURNAL_SCAN, matches=matches, since=after)
    return pick_lines(read.entries), read.note


def pick_lines(entries: Sequence[JournalEntry], limit: int = JOURNAL_SHOWN) -> list[JournalEntry]:
    """The last ``limit`` error lines (``-p err``); when the agent itself wrote none of them
    (only systemd's "Failed to start …"), also its own last lines, whatever their priority —
    an agent that dies before its logging is set up writes its reason at the default one."""
    errors = [e for e in entries if e.priority <= ERR][-limit:]
    if any(e.from_agent for e in errors):
        return errors
    own = [e for e in entries if e.from_agent][-limit:]
    chosen = {id(e) for e in errors} | {id(e) for e in own}
    return [e for e in entries if id(e) in chosen]
