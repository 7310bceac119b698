"""The real agent talking to systemd: sd_notify and journald's native protocol, on the wire.

systemd is not PID 1 here, so the test plays its part with real sockets: a datagram socket as
``NOTIFY_SOCKET`` (READY, STATUS, RELOADING, WATCHDOG, STOPPING as the agent sends them), and
for journald, the agent runs in a private mount namespace (``unshare -m``) where the test's
datagram socket is bind-mounted at ``/run/systemd/journal/socket``, libsystemd's fixed path, with
``INVOCATION_ID`` set as systemd sets it. The systemd test host (tests/e2e) checks the same
with journalctl.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.agent_api_support import healthy, plain_home, socket_of
from tests.integration.agent_support import AgentProcess, agent, configure, serving, wait_until
from tests.integration.compose_support import DSO, ComposeProject, project
from tests.integration.rotation_compose_support import WEB_SERVICE, replicas, write_scripts

pytestmark = pytest.mark.integration
__all__ = ["agent", "project"]


class Datagrams:
    """A bound AF_UNIX datagram socket read by a thread: ``(monotonic time, bytes)`` in order.
    ``on_message`` runs on that thread as each arrives (to look at the agent at that moment)."""

    def __init__(self, name: str, on_message: Callable[[bytes], None] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="dso-sd-"))  # sun_path: 108 bytes at most
        self.dir.chmod(0o755)
        self.path = self.dir / name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.2)
        self.received: list[tuple[float, bytes]] = []
        self.on_message = on_message
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                return
            if self.on_message is not None:
                self.on_message(data)
            with self._cond:
                self.received.append((time.monotonic(), data))
                self._cond.notify_all()

    def texts(self) -> list[str]:
        with self._cond:
            return [data.decode() for _, data in self.received]

    def wait_for(
        self, wanted: Callable[[bytes], bool], timeout: float = 30.0, *, after: float = 0.0
    ) -> float:
        """The arrival time of the first datagram ``wanted`` accepts (arrived after ``after``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, data in self.received:
                    if at > after and wanted(data):
                        return at
                left = deadline - time.monotonic()
                assert left > 0, f"not received in {timeout}s; got {self.received!r}"
                self._cond.wait(left)

    def close(self) -> None:
        self._closed = True
        self.sock.close()
        self._thread.join(timeout=5)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def datagrams(name: str, on_message: Callable[[bytes], None] | None = None) -> Iterator[Datagrams]:
    listening = Datagrams(name, on_message)
    try:
        yield listening
    finally:
        listening.close()


def is_(text: str) -> Callable[[bytes], bool]:
    return lambda data: data == text.encode()


# -- sd_notify --------------------------------------------------------------------------------


def test_ready_comes_after_recovery_and_the_socket_then_watchdog_pings_and_stopping(
    tmp_path: Path,
) -> None:
    home = plain_home(tmp_path)
    log = tmp_path / "agent.log"
    agent_socket = socket_of(home)
    at_ready: dict[str, object] = {}

    def look(data: bytes) -> None:  # on the reader thread, the moment READY=1 arrives
        if data == b"READY=1":
            at_ready["log"] = log.read_text()
            at_ready["healthy"] = healthy(agent_socket)

    with datagrams("notify", look) as notify:
        # WatchdogSec=1s: a ping every 0.5 s.
        home.env.update(NOTIFY_SOCKET=str(notify.path), WATCHDOG_USEC="1000000")
        process = AgentProcess(home, log)
        try:
            process.start(ready="Listening on")
            ready_at = notify.wait_for(is_("READY=1"))
            assert "recovery: no interrupted rotation" in str(at_ready["log"])
            assert "Listening on " in str(at_ready["log"])
            assert at_ready["healthy"] is True, "READY=1 before the socket answered health"
            texts = notify.texts()
            assert texts.index("STATUS=recovering interrupted rotations") < texts.index("READY=1")
            assert "STATUS=serving: 0 managed containers, 0 rotating, 0 waiting" in texts
            # Pings from the main loop at half of WATCHDOG_USEC.
            time.sleep(2.6)
            pings = [at for at, data in notify.received if data == b"WATCHDOG=1" and at >= ready_at]
            assert len(pings) >= 5, notify.texts()
            gaps = [b - a for a, b in itertools.pairwise(pings)]
            assert max(gaps) < 0.75, gaps  # WatchdogSec would allow 1 s
            assert process.stop() == 0
        finally:
            process.kill()
        texts = notify.texts()
        assert "STOPPING=1" in texts
        assert texts.index("STOPPING=1") > texts.index("READY=1")
        assert "WATCHDOG=1" not in texts[texts.index("STOPPING=1") :]


def test_a_stuck_main_loop_stops_the_watchdog_pings_until_it_goes_on(tmp_path: Path) -> None:
    """A SIGHUP reload that hangs (test mode: it waits while a file exists, as a read of the
    configuration on a hung file system would) blocks the main loop while every other thread
    runs on: no ping while stuck, so systemd would restart the agent after WatchdogSec. Once
    the reload returns, READY=1 and the pings come back."""
    home = plain_home(tmp_path)
    log = tmp_path / "agent.log"
    hang = tmp_path / "hang"
    hang.touch()
    with datagrams("notify") as notify:
        home.env.update(
            NOTIFY_SOCKET=str(notify.path),
            WATCHDOG_USEC="400000",  # a ping every 0.2 s
            DSO_TEST_MODE="1",
            DSO_FAULT_STALL_RELOAD_WHILE=str(hang),
        )
        process = AgentProcess(home, log)
        try:
            process.start(ready="Listening on")
            notify.wait_for(is_("READY=1"))
            assert process.proc is not None
            process.proc.send_signal(signal.SIGHUP)
            stuck_at = notify.wait_for(is_("RELOADING=1"))
            time.sleep(1.5)
            during = [at for at, data in notify.received if at > stuck_at]
            assert notify.texts()[-2:] == ["RELOADING=1", "STATUS=reloading the configuration"]
            assert len(during) == 1, "pinged while the main loop was stuck"
            assert healthy(socket_of(home)), "the other threads run on"
            hang.unlink()  # the reload returns: the loop goes on
            released = time.monotonic()
            notify.wait_for(is_("READY=1"), after=released)
            notify.wait_for(is_("WATCHDOG=1"), after=released)
            assert process.stop() == 0
        finally:
            process.kill()
        pings = [at for at, data in notify.received if data == b"WATCHDOG=1"]
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert max(gaps) > 1.5 and sorted(gaps)[-2] < 0.35, gaps  # one hole: the stall


# -- journald ---------------------------------------------------------------------------------


def parse_entry(data: bytes) -> dict[str, str]:
    """One entry of journald's native protocol: ``KEY=value\\n``, or ``KEY\\n`` + 64-bit
    little-endian length + bytes + ``\\n`` for a value with a newline."""
    fields: dict[str, str] = {}
    i = 0
    while i < len(data):
        end = data.index(b"\n", i)
        line = data[i:end]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            i = end + 1
        else:
            key = line
            size = int.from_bytes(data[end + 1 : end + 9], "little")
            value = data[end + 9 : end + 9 + size]
            i = end + 9 + size + 1
        fields[key.decode()] = value.decode()
    return fields


def can_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "-m", "true"], timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


#: Runs "$@" where /run/systemd/journal is the directory in $DSO_TEST_JOURNAL_DIR.
IN_NAMESPACE = (
    "mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/journal && "
    'mount --bind "$DSO_TEST_JOURNAL_DIR" /run/systemd/journal && exec "$@"'
)


UNSHARE = ("unshare", "-m", "--propagation", "private", "sh", "-c", IN_NAMESPACE, "sh")


class JournaldAgent(AgentProcess):
    """The agent under a stand-in journald (its stderr file stays for anything not sent)."""

    def __init__(self, project: ComposeProject, log: Path, journal: Datagrams) -> None:
        super().__init__(project, log)
        self.journal = journal

    def start(self, *, ready: str = "Event watcher started", timeout: float = 30.0) -> None:
        env = {
            **self.project.env,
            "INVOCATION_ID": os.urandom(16).hex(),
            "DSO_TEST_JOURNAL_DIR": str(self.journal.dir),
        }
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [*UNSHARE, DSO, "--log-level", "debug", "agent"],
            cwd=self.project.dir,
            env=env,
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )
        out.close()
        self.entry(lambda e: e.get("MESSAGE", "").endswith(ready), timeout=timeout)

    def entries(self) -> list[dict[str, str]]:
        with self.journal._cond:
            return [parse_entry(data) for _, data in self.journal.received]

    def entry(self, wanted: Callable[[dict[str, str]], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(wanted(e) for e in self.entries()):
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}: {self.text()}")
            assert time.monotonic() < deadline, [e.get("MESSAGE") for e in self.entries()]
            time.sleep(0.05)


def test_journal_entries_carry_priorities_and_follow_one_rotation_by_trace_id(
    project: ComposeProject, agent: Callable[..., AgentProcess], tmp_path: Path, canary: str
) -> None:
    if not can_unshare():
        pytest.skip("unshare -m is not permitted here (needs CAP_SYS_ADMIN)")
    configure(project)
    write_scripts(project)
    project.write(
        "compose.yaml",
        "services:\n  web:" + WEB_SERVICE + "    environment:\n      MSG: dso://app/msg\n",
    )
    project.set_secret("app/msg", "v1")
    project.dso("up", "-d")
    (web,) = replicas(project, "web")
    with datagrams("socket") as journal:
        running = JournaldAgent(project, tmp_path / "agent.log", journal)
        try:
            running.start()
            project.set_secret("app/msg", canary)
            running.entry(lambda e: e["MESSAGE"].startswith("[INFO] dso.agent: Rotation complete"))
            wait_until(lambda: serving(web) == canary + "\n")
            # An error: a SIGHUP finds a broken configuration.
            config = Path(project.env["DSO_HOME"]) / "config.yaml"
            good = config.read_text()
            config.write_text(good + "agent:\n  nonsense: 1\n")
            assert running.proc is not None
            running.proc.send_signal(signal.SIGHUP)
            running.entry(lambda e: "configuration not reloaded" in e["MESSAGE"])
            config.write_text(good)
            assert running.stop() == 0
        finally:
            running.kill()
        entries = running.entries()
        stderr = running.text()

    assert {e["SYSLOG_IDENTIFIER"] for e in entries} == {"dso-agent"}
    started = next(e for e in entries if "Agent started, version" in e["MESSAGE"])
    assert started["PRIORITY"] == "6" and started["DSO_MODE"] == "local"
    assert started["DSO_PID"].isdigit() and started["DSO_LOGGER"] == "dso.agent"
    refused = next(e for e in entries if "configuration not reloaded" in e["MESSAGE"])
    assert refused["PRIORITY"] == "3"
    assert [e["MESSAGE"] for e in entries if int(e["PRIORITY"]) <= 3] == [refused["MESSAGE"]]
    assert any(e["PRIORITY"] == "7" for e in entries)  # debug lines, at debug
    levels = {"7": "DEBUG", "6": "INFO", "4": "WARNING", "3": "ERROR"}
    for e in entries:  # MESSAGE is the line stderr would have had, without the <N> prefix
        assert e["MESSAGE"].startswith(f"[{levels[e['PRIORITY']]}] {e['DSO_LOGGER']}: "), e

    # `journalctl DSO_TRACE_ID=<id>` follows the rotation: from the change to its completion.
    complete = next(e for e in entries if "Rotation complete: dso://app/msg" in e["MESSAGE"])
    trace = complete["DSO_TRACE_ID"]
    one = [e for e in entries if e.get("DSO_TRACE_ID") == trace]
    messages = [e["MESSAGE"] for e in one]
    assert any("Secret rotation triggered: dso://app/msg" in m for m in messages)
    assert any("dso.rotation" in m and f"created {web}_dso_new_" in m for m in messages)
    assert messages[-1] == complete["MESSAGE"]
    assert {e["DSO_SERVICE"] for e in one} == {"web"}
    assert {e["DSO_PROJECT"] for e in one} == {project.name}
    engine = [e for e in one if "DSO_ROTATION" in e]  # the engine's lines about a container
    assert len(engine) >= 3 and {e.get("DSO_CONTAINER") for e in engine} == {web}
    assert complete["DSO_CONTAINER"] == web

    # All went to journald, none of it to stderr too; and never the secret value.
    assert "[INFO]" not in stderr and "Agent started" not in stderr
    raw = b"".join(data for _, data in journal.received)
    assert canary.encode() not in raw and canary not in stderr
