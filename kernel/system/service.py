"""``systemctl`` for the dso-agent unit: is systemd here, what state the unit is in, and the
commands ``docker dso system enable|disable|restart`` run.

systemd runs when it is PID 1, which it shows by creating ``/run/systemd/system``
(``sd_booted()``'s test): :func:`systemd_booted`; :func:`no_systemd_detail` says what runs
instead, in the words the doctor uses too. :class:`Systemctl` runs ``systemctl`` on the unit,
``show`` parsed (:func:`parse_properties`) into a :class:`UnitState`. A command that fails is an
:class:`~kernel.errors.AgentError` (exit 10: the host agent cannot be started, stopped or
asked) with systemctl's own words. ``journalctl``: :mod:`kernel.system.journal`.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kernel.errors import AgentError
from kernel.system.command import run_captured
from kernel.system.unit import UNIT_NAME

__all__ = [
    "ENABLED_STATES",
    "PROPERTIES",
    "STATE_PROPERTIES",
    "SYSTEMD_DIR",
    "Systemctl",
    "UnitState",
    "no_systemd_detail",
    "parse_properties",
    "pid1_name",
    "show_argv",
    "systemd_booted",
]

#: systemd creates this directory when it is PID 1 (``sd_booted()``'s test).
SYSTEMD_DIR = Path("/run/systemd/system")
#: Seconds a ``systemctl show`` may take.
QUERY_TIMEOUT = 10.0
#: Seconds ``systemctl enable``/``disable``/``reset-failed`` may take.
CHANGE_TIMEOUT = 60.0
#: The unit's state, as the doctor judges it.
STATE_PROPERTIES = (
    "LoadState",
    "UnitFileState",
    "ActiveState",
    "SubState",
    "Result",
    "FragmentPath",
)
#: What :meth:`Systemctl.show` asks.
PROPERTIES = (
    *STATE_PROPERTIES,
    "MainPID",
    "InvocationID",
    "NRestarts",
    "ExecMainStatus",
    "ExecMainCode",
    "ActiveEnterTimestampMonotonic",
    "InactiveEnterTimestampMonotonic",
    "DropInPaths",
    "Job",
)
#: ``UnitFileState`` values under which the unit starts at boot (or cannot be disabled).
ENABLED_STATES = frozenset({"enabled", "enabled-runtime", "static", "linked", "linked-runtime"})
# -- is systemd here ----------------------------------------------------------------------------


def systemd_booted(systemd_dir: Path | None = None) -> bool:
    """True when systemd is PID 1 (it made ``systemd_dir``, default :data:`SYSTEMD_DIR`)."""
    return (SYSTEMD_DIR if systemd_dir is None else systemd_dir).is_dir()


def pid1_name() -> str:
    """The name of PID 1 (``systemd``, ``bash``, ``tini``…), or ``?``."""
    try:
        return Path("/proc/1/comm").read_text().strip() or "?"
    except OSError:
        return "?"


def no_systemd_detail(systemd_dir: Path | None = None) -> str:
    """Why there is no systemd here, in one clause (the doctor's and ``system …``'s wording)."""
    where = SYSTEMD_DIR if systemd_dir is None else systemd_dir
    return (
        f"systemd is not PID 1 here ({where} does not exist; PID 1 is {pid1_name()}): "
        "`docker dso system …` and the dso-agent unit need systemd"
    )


# -- systemctl ----------------------------------------------------------------------------------


def show_argv(unit: str = UNIT_NAME, properties: Sequence[str] = PROPERTIES) -> list[str]:
    """``systemctl show UNIT --property=A,B,…``."""
    return ["systemctl", "show", unit, "--property=" + ",".join(properties)]


def parse_properties(text: str) -> dict[str, str]:
    """``systemctl show``'s ``Key=value`` lines as a dict (a value may contain ``=``)."""
    props: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key:
            props[key.strip()] = value.strip()
    return props


@dataclass(frozen=True, slots=True)
class UnitState:
    """What systemd says of the unit (``systemctl show``)."""

    #: ``loaded``, ``not-found`` (no unit file), ``bad-setting``, ``error``, ``masked``.
    load_state: str
    #: ``active``, ``activating``, ``deactivating``, ``inactive``, ``failed``, ``reloading``.
    active_state: str
    #: The type-specific state: ``running``, ``start``, ``auto-restart``, ``dead``, ``failed``…
    sub_state: str
    #: ``enabled``, ``disabled``, ``static``, ``masked``… (empty when not installed).
    unit_file_state: str
    #: ``success``, ``exit-code``, ``signal``, ``timeout``, ``watchdog``, ``start-limit-hit``…
    result: str = ""
    main_pid: int = 0
    #: systemd's id of the unit's current (or last) run; journal field ``_SYSTEMD_INVOCATION_ID``.
    invocation_id: str = ""
    #: Automatic restarts (``Restart=``) since the unit was last started by hand.
    restarts: int = 0
    #: How the main process last ended: ``ExecMainCode`` (1 exited, 2 killed, 3 dumped) and
    #: ``ExecMainStatus`` (its exit status or signal).
    exit_code: int = 0
    exit_status: int = 0
    #: Unix time the unit entered its current state (active: since it started; else since it
    #: stopped), None when it never did.
    since: float | None = None
    fragment_path: str = ""
    drop_ins: tuple[str, ...] = ()
    #: A job systemd has queued for the unit (``Job`` property), empty when none.
    job: str = ""

    @classmethod
    def from_properties(cls, props: Mapping[str, str], *, now: float | None = None) -> UnitState:
        active = props.get("ActiveState", "")
        key = "ActiveEnter" if active in ("active", "reloading") else "InactiveEnter"
        return cls(
            load_state=props.get("LoadState", ""),
            active_state=active,
            sub_state=props.get("SubState", ""),
            unit_file_state=props.get("UnitFileState", ""),
            result=props.get("Result", ""),
            main_pid=_int(props.get("MainPID")),
            invocation_id=props.get("InvocationID", ""),
            restarts=_int(props.get("NRestarts")),
            exit_code=_int(props.get("ExecMainCode")),
            exit_status=_int(props.get("ExecMainStatus")),
            since=_monotonic_to_unix(props.get(f"{key}TimestampMonotonic"), now=now),
            fragment_path=props.get("FragmentPath", ""),
            drop_ins=tuple(props.get("DropInPaths", "").split()),
            job=props.get("Job", ""),
        )

    @property
    def installed(self) -> bool:
        return self.load_state not in ("", "not-found")

    @property
    def running(self) -> bool:
        """The agent's process runs (and, for ``Type=notify``, said READY)."""
        return self.active_state in ("active", "reloading")

    @property
    def enabled(self) -> bool:
        return self.unit_file_state in ENABLED_STATES

    @property
    def exited(self) -> bool:
        """The last run ended (failed, or waiting for ``Restart=`` to start it again)."""
        return self.active_state in ("failed", "inactive") or self.sub_state == "auto-restart"

    @property
    def state(self) -> str:
        """``active (running)``, ``failed (failed)``…"""
        return f"{self.active_state or '?'} ({self.sub_state or '?'})"

    def how_it_ended(self) -> str:
        """``exit status 3``, ``killed by signal 9``, or the result when systemd stopped it."""
        if self.exit_code == 1:
            ended = f"exit status {self.exit_status}"
        elif self.exit_code in (2, 3):
            ended = f"killed by signal {self.exit_status}"
        else:
            ended = ""
        if self.result and self.result not in ("success", "exit-code", "signal", "core-dump"):
            ended = f"{ended}, {self.result}" if ended else self.result
        return ended or self.result or "stopped"

    def as_dict(self) -> dict[str, object]:
        return {
            "load_state": self.load_state,
            "active_state": self.active_state,
            "sub_state": self.sub_state,
            "unit_file_state": self.unit_file_state,
            "result": self.result,
            "main_pid": self.main_pid or None,
            "invocation_id": self.invocation_id or None,
            "restarts": self.restarts,
            "since": round(self.since, 3) if self.since is not None else None,
            "fragment_path": self.fragment_path or None,
            "drop_ins": list(self.drop_ins),
        }


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _monotonic_to_unix(text: str | None, *, now: float | None = None) -> float | None:
    """A ``…TimestampMonotonic`` value (µs on CLOCK_MONOTONIC, 0: never) as Unix time.

    The monotonic form is in every systemd (``--timestamp=unix`` needs 251 or later) and the
    clock is the kernel's, shared with systemd even from a container."""
    micros = _int(text)
    if micros <= 0:
        return None
    now = time.time() if now is None else now
    return now - (time.monotonic() - micros / 1e6)


class Systemctl:
    """``systemctl`` on one unit. Raises :class:`AgentError` when a command fails."""

    def __init__(self, unit: str = UNIT_NAME) -> None:
        self.unit = unit

    def show(self) -> UnitState:
        done = self._run(show_argv(self.unit), QUERY_TIMEOUT)
        return UnitState.from_properties(parse_properties(done.stdout))

    def enable(self) -> None:
        self._run(["systemctl", "enable", self.unit], CHANGE_TIMEOUT)

    def disable(self) -> None:
        self._run(["systemctl", "disable", self.unit], CHANGE_TIMEOUT)

    def reset_failed(self) -> None:
        """Forget a failed state and the start-limit counter, so a start is not refused with
        "Start request repeated too quickly" after the cause is fixed."""
        self._run(["systemctl", "reset-failed", self.unit], CHANGE_TIMEOUT)

    def start(self, timeout: float) -> str | None:
        """``systemctl start``: returns when systemd considers the unit started (``Type=notify``:
        the agent said READY=1): None, or why it did not (systemctl's words, or that it took
        over ``timeout``; systemd goes on with the job then)."""
        return self._try(["systemctl", "start", self.unit], timeout)

    def restart(self, timeout: float) -> str | None:
        """``systemctl restart``, as :meth:`start`."""
        return self._try(["systemctl", "restart", self.unit], timeout)

    def stop(self, timeout: float) -> None:
        self._run(["systemctl", "stop", self.unit], timeout)

    def _try(self, argv: list[str], timeout: float) -> str | None:
        return self._attempt(argv, timeout)[1]

    def _run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        done, failure = self._attempt(argv, timeout)
        if done is None or failure:
            raise AgentError(failure or f"`{' '.join(argv)}` did not run")
        return done

    def _attempt(
        self, argv: list[str], timeout: float
    ) -> tuple[subprocess.CompletedProcess[str] | None, str | None]:
        """What ``argv`` printed, or why it failed (systemctl's words, or the time it took)."""
        command = " ".join(argv)
        try:
            done = run_captured(argv, timeout)
        except FileNotFoundError:
            raise AgentError(
                "systemd runs, but there is no systemctl on PATH",
                hint="install systemd's tools (package systemd)",
            ) from None
        except subprocess.TimeoutExpired:
            return None, f"`{command}` did not finish within {timeout:g} s"
        if done.returncode != 0:
            said = " ".join((done.stderr or done.stdout).split())
            return done, f"`{command}` failed (exit {done.returncode}): {said or 'no message'}"
        return done, None
