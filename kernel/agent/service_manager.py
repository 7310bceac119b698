"""Talking to systemd: sd_notify's READY, STATUS, RELOADING, STOPPING and WATCHDOG messages.

For the unit's ``Type=notify`` and ``WatchdogSec=``. The agent calls :meth:`ServiceManager.ready`
once recovery has run, Docker answered and the socket listens; :meth:`ServiceManager.tick` from
its **main loop** feeds the watchdog every half of ``WATCHDOG_USEC`` (sd_watchdog_enabled(3):
only when ``WATCHDOG_PID`` is unset or this process), never from a thread of its own, so a main
loop that is stuck stops the pings and systemd restarts the agent. Everything is a no-op without
``NOTIFY_SOCKET`` (a terminal, a container, local mode).

Through ``cysystemd.daemon.notify`` (libsystemd's ``sd_notify``), one assignment per datagram.
libsystemd reads ``NOTIFY_SOCKET`` at each call, so it stays in the environment; the provider
processes get a filtered environment without it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from kernel.log import get_logger

log = get_logger("agent.systemd")

#: Sends one notification: ``READY``, ``STATUS``… (cysystemd's ``Notification`` names) and the
#: value of those that take one; raises on failure.
Notifier = Callable[[str, str | None], object]
#: Longest STATUS= text sent (systemctl status shows one line).
MAX_STATUS = 200


def watchdog_usec(environ: Mapping[str, str], pid: int) -> int | None:
    """``WATCHDOG_USEC`` when the watchdog is on for process ``pid`` (sd_watchdog_enabled(3)):
    set, a positive whole number, and ``WATCHDOG_PID`` unset or ``pid``."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = environ.get("WATCHDOG_PID")
    if owner:
        try:
            if int(owner) != pid:
                return None
        except ValueError:
            return None
    return usec


def cysystemd_notifier() -> Notifier:
    """libsystemd's sd_notify through cysystemd (ImportError without it)."""
    from cysystemd import daemon

    def notify(name: str, value: str | None) -> object:
        kind = daemon.Notification[name]
        if value is None:
            return daemon.notify(kind, return_exceptions=False)
        return daemon.notify(kind, value, return_exceptions=False)

    return notify


class ServiceManager:
    """The agent's side of sd_notify; a no-op without ``NOTIFY_SOCKET``."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        notify: Notifier | None = None,
        clock: Callable[[], float] = time.monotonic,
        pid: int | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.clock = clock
        self.socket = env.get("NOTIFY_SOCKET") or None
        usec = watchdog_usec(env, os.getpid() if pid is None else pid)
        #: Seconds between two WATCHDOG=1 (half of WATCHDOG_USEC); None: no watchdog.
        self.watchdog: float | None = usec / 2e6 if usec and self.socket else None
        self._notify = notify
        if self.socket and notify is None:
            try:
                self._notify = cysystemd_notifier()
            except ImportError as exc:
                log.error(
                    "systemd: cysystemd cannot be imported (%s): no sd_notify, so a "
                    "Type=notify unit never sees READY=1 and times out",
                    exc,
                )
                self.socket = None
                self.watchdog = None
        self._next_ping = clock()
        self._status: str | None = None
        self._failing = False
        self._problem: str | None = None

    @property
    def enabled(self) -> bool:
        return self.socket is not None

    # -- messages ---------------------------------------------------------------------------

    def send(self, name: str, value: str | None = None) -> bool:
        """``name=value`` (``name=1`` without a value); a failure is logged once, never
        raised."""
        if self._notify is None or self.socket is None:
            return False
        try:
            self._notify(name, value)
        except Exception as exc:  # libsystemd's errors arrive as RuntimeError/ValueError
            if not self._failing:
                log.warning("systemd: sd_notify to %s failed: %s", self.socket, exc)
            self._failing = True
            return False
        self._failing = False
        return True

    def status(self, text: str) -> None:
        """``STATUS=`` (what ``systemctl status`` shows), sent when it changed; feeds the
        watchdog when due (start-up phases run on the main thread too)."""
        self._set_status(text)
        self.tick()

    def _set_status(self, text: str) -> None:
        text = " ".join(text.split())[:MAX_STATUS]
        if text != self._status and self.send("STATUS", text):
            self._status = text

    def ready(self, status: str) -> None:
        """``READY=1``: start-up (or a reload) is complete."""
        self.send("READY")
        self._set_status(status)
        self.tick(force=True)

    def reloading(self) -> None:
        """``RELOADING=1``: :meth:`ready` follows when the configuration was read."""
        self.send("RELOADING")
        self._set_status("reloading the configuration")

    def stopping(self) -> None:
        """``STOPPING=1``: the agent is shutting down."""
        self.send("STOPPING")
        self._set_status("stopping")

    # -- watchdog ---------------------------------------------------------------------------

    def tick(self, *, force: bool = False) -> bool:
        """``WATCHDOG=1`` when half of ``WATCHDOG_USEC`` passed since the last one (``force``:
        now). Call it from the main loop only. True when a ping was sent."""
        if self.watchdog is None:
            return False
        now = self.clock()
        if not force and now < self._next_ping:
            return False
        self._next_ping = now + self.watchdog
        return self.send("WATCHDOG")

    def heartbeat(self, status: str, problem: str | None = None) -> None:
        """One turn of the main loop: ``STATUS=`` when it changed and ``WATCHDOG=1`` when due,
        unless ``problem`` (a worker thread died): then no ping (said once), and systemd
        restarts the agent after ``WatchdogSec``."""
        if problem is None:
            self._problem = None
            self.status(status)
            return
        if problem != self._problem:
            self._problem = problem
            if self.watchdog is not None:
                log.error("watchdog: no longer fed, systemd will restart the agent: %s", problem)
            self._set_status(f"failing: {problem}")

    def wait_time(self, longest: float) -> float:
        """How long the main loop may wait before its next :meth:`tick` is due."""
        if self.watchdog is None:
            return longest
        return max(0.0, min(longest, self._next_ping - self.clock()))
