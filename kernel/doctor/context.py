"""What the checks look at, read once and shared: layout, configuration, Docker, the journal.

Checks run in parallel threads, so every shared read is memoised under its own lock (the
Docker SDK client is built once, the configuration read once). A failed read is memoised too
and raised again to every check that asks. Everything a test wants to fake is a constructor
argument (the Docker connection, commands such as ``systemctl``, the systemd directory, the
clock, the environment), with the real thing as the default.

The doctor changes nothing it looks at: state files are parsed here, not through
:class:`~kernel.state.StateFile` (which moves an unreadable file aside), and the journal is
read only when that parse found its files readable.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kernel.agent.api.client import socket_path
from kernel.config import Config, ConfigReport, check_config
from kernel.containers.client import connect
from kernel.containers.daemon_info import daemon_version, docker_host
from kernel.doctor.model import Level, NotChecked
from kernel.doctor.state_files import scan_state
from kernel.errors import ConfigPermissionError, DSOError
from kernel.paths import Layout
from kernel.rotation.journal import INFLIGHT_DIR, Journal, RotationEntry
from kernel.system.command import run_captured

if TYPE_CHECKING:
    import docker


T = TypeVar("T")

#: systemd creates this directory when it is PID 1 (``sd_booted()``'s test).
SYSTEMD_DIR = Path("/run/systemd/system")
#: Seconds a Docker call of the doctor may take.
DOCKER_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Completed:
    """What a command printed and how it ended."""

    returncode: int
    stdout: str
    stderr: str


#: ``(argv, timeout)`` → :class:`Completed`; raises ``FileNotFoundError`` when the program is
#: missing and ``subprocess.TimeoutExpired`` when it does not finish.
Runner = Callable[[Sequence[str], float], Completed]


def run_command(argv: Sequence[str], timeout: float) -> Completed:
    done = run_captured(argv, timeout)
    return Completed(done.returncode, done.stdout, done.stderr)


class Context:
    """The installation under examination and the reads its checks share."""

    def __init__(
        self,
        layout: Layout,
        *,
        level: Level = Level.BASIC,
        config_path: Path | None = None,
        config_candidates: Sequence[Path] | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        run: Runner = run_command,
        systemd_dir: Path = SYSTEMD_DIR,
        euid: int | None = None,
        daemon_version: Callable[[], tuple[str, dict[str, Any]]] | None = None,
        connect: Callable[[], docker.DockerClient] | None = None,
    ) -> None:
        self.layout = layout
        self.level = level
        #: ``-c``/``DSO_CONFIG`` (None: the lookup order of the spec).
        self.config_path = config_path
        self.config_candidates = config_candidates
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.clock = clock
        self.run = run
        self.systemd_dir = systemd_dir
        self.euid = os.geteuid() if euid is None else euid
        self._daemon_version = daemon_version or _daemon_version
        self._connect = connect or _connect
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._memo: dict[str, tuple[bool, Any]] = {}

    @property
    def mode(self) -> str:
        return self.layout.mode

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()`` once per key, whichever thread asks first; its exception too."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                try:
                    self._memo[key] = (True, compute())
                except (DSOError, NotChecked, OSError) as exc:
                    self._memo[key] = (False, exc)
            done, value = self._memo[key]
        if not done:
            raise value
        return value  # type: ignore[no-any-return]

    # -- configuration ------------------------------------------------------------------------

    def config_report(self) -> ConfigReport:
        return self.memo(
            "config",
            lambda: check_config(
                self.config_path, candidates=self.config_candidates, env=self.environ
            ),
        )

    def config(self) -> Config:
        """The valid configuration; :class:`NotChecked` when it is not (``config.valid``)."""
        report = self.config_report()
        if report.config is not None:
            return report.config

        if all(isinstance(e, ConfigPermissionError) for e in report.errors):
            raise NotChecked(
                "dso refuses the configuration's permissions", see="config.permissions"
            )
        raise NotChecked("the configuration is invalid", see="config.valid")

    def config_or_none(self) -> Config | None:
        try:
            return self.config()
        except NotChecked:
            return None

    def socket_path(self) -> Path:
        return socket_path(self.layout, self.config_or_none())

    # -- Docker -------------------------------------------------------------------------------

    def daemon(self) -> tuple[str, dict[str, Any]]:
        """``(address, /version document)``; raises DockerUnavailableError."""
        return self.memo("daemon", self._daemon_version)

    def docker(self) -> docker.DockerClient:
        """A Docker SDK client; :class:`NotChecked` when the daemon does not answer."""
        try:
            self.daemon()
        except DSOError:
            raise NotChecked("Docker is not reachable", see="docker.reachable") from None
        return self.memo("docker", self._connect)

    # -- the journal ----------------------------------------------------------------------------

    def owner(self) -> str:
        """This installation's owner id (label ``dso.rotation.owner`` of its rotations)."""

        return Journal(self.layout.state).owner

    def journal(self) -> Journal | None:
        """The rotation journal, when one exists and the state scan found its files readable
        (:class:`NotChecked` otherwise: reading it would move an unreadable file aside)."""
        return self.memo("journal", self._journal)

    def _journal(self) -> Journal | None:
        if not (self.layout.state / INFLIGHT_DIR).is_dir():
            return None  # no rotation ever ran here (and Journal would create the directory)
        scan = self.memo("state.scan", lambda: scan_state(self.layout.state))
        if scan.journal_unreadable:
            raise NotChecked("the rotation journal has unreadable files", see="state.files")
        return Journal(self.layout.state, clock=self.clock)

    def unfinished(self) -> list[RotationEntry]:
        """Unfinished rotations (``rotations.d``); none when there is no journal."""
        journal = self.journal()
        if journal is None:
            return []
        return self.memo("unfinished", journal.needing_recovery)


def _daemon_version() -> tuple[str, dict[str, Any]]:
    host = docker_host()
    return host, daemon_version(host, timeout=DOCKER_TIMEOUT)


def _connect() -> docker.DockerClient:
    return connect(timeout=DOCKER_TIMEOUT)
