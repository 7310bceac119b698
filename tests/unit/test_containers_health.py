"""Which health probe gates a container, what the gate reports when it fails, the fault switch."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, cast

import pytest

from kernel.containers.health import HealthReport, Probe, _cap, probe_for, wait_healthy
from kernel.containers.view import ContainerView
from kernel.errors import UsageError
from kernel.rotation.fault import kill_step
from tests.unit.rotation_fixtures import OLD_ID, inspect_doc

CASES = [
    (
        {"Config__Healthcheck": {"Test": ["CMD-SHELL", "wget -q localhost"]}},
        "healthcheck",
        ("/bin/sh", "-c", "wget -q localhost"),
    ),
    (
        {"Config__Healthcheck": {"Test": ["CMD", "/bin/check", "-v"]}},
        "healthcheck",
        ("/bin/check", "-v"),
    ),
    ({"Config__Healthcheck": {"Test": ["NONE"]}}, "running", ()),
    (
        {"Config__Labels": {"dso.health.exec": "test -f /ready"}},
        "exec",
        ("/bin/sh", "-c", "test -f /ready"),
    ),
    ({"Config__Labels": {"dso.health.exec": '["/bin/ready"]'}}, "exec", ("/bin/ready",)),
    ({}, "running", ()),
]


@pytest.mark.parametrize(("patch", "kind", "command"), CASES)
def test_probe_choice(patch: dict, kind: str, command: tuple[str, ...]) -> None:
    probe = probe_for(ContainerView(inspect_doc(**patch)))
    assert (probe.kind, probe.command) == (kind, command)


def test_label_probes() -> None:
    http = probe_for(ContainerView(inspect_doc(Config__Labels={"dso.health.http": "8080/healthz"})))
    assert (http.kind, http.port, http.path) == ("http", 8080, "/healthz")
    tcp = probe_for(ContainerView(inspect_doc(Config__Labels={"dso.health.tcp": "5432"})))
    assert (tcp.kind, tcp.port) == ("tcp", 5432)
    running = probe_for(ContainerView(inspect_doc(Config__Labels={"dso.health.running": "2s"})))
    assert (running.kind, running.duration) == ("running", 2.0)
    timed = probe_for(
        ContainerView(inspect_doc(Config__Healthcheck={"Test": ["CMD", "x"], "Timeout": 3 * 10**9}))
    )
    assert timed.timeout == 3.0


@pytest.mark.parametrize(
    "labels",
    [{"dso.health.tcp": "http"}, {"dso.health.http": "99999"}, {"dso.health.running": "soon"}],
)
def test_bad_probe_labels_are_usage_errors(labels: dict[str, str]) -> None:
    with pytest.raises(UsageError, match=r"label dso\.health"):
        probe_for(ContainerView(inspect_doc(Config__Labels=labels)))


def test_output_is_capped() -> None:
    assert len(_cap(b"x" * 10_000)) == 4096 + len("[...]")
    assert _cap(b"ok") == "ok"


def test_fault_injection_needs_test_mode() -> None:
    assert kill_step({"DSO_FAULT_KILL_AFTER_STEP": "rename_old"}) is None
    armed = {"DSO_FAULT_KILL_AFTER_STEP": "rename_old", "DSO_TEST_MODE": "1"}
    assert kill_step(armed) == "rename_old"


# -- the gate's verdict, with a scripted Docker client ------------------------------------------

NO_SHELL = (
    b"OCI runtime exec failed: exec failed: unable to start container process: "
    b'exec: "/bin/sh": stat /bin/sh: no such file or directory: unknown\r\n'
)
NO_CURL = (
    b"OCI runtime exec failed: exec failed: unable to start container process: "
    b'exec: "curl": executable file not found in $PATH: unknown\r\n'
)
#: A scripted exec that never answers (until the test ends).
HANG = None


class FakeClock:
    """Seconds that pass only when the fake daemon says so (each exec costs ``cost``)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeApi:
    """The low-level calls the gate makes; exec answers come from ``script`` in order."""

    def __init__(
        self, script: list[tuple[bytes, int] | None], clock: FakeClock, cost: float = 1.0
    ) -> None:
        self.script = list(script)
        self.clock = clock
        self.cost = cost
        self.execs: list[list[str]] = []
        self.release = threading.Event()
        self.answers: dict[str, tuple[bytes, int]] = {}

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        return inspect_doc(
            State={"Running": True, "Status": "running", "Health": {"Status": "starting"}}
        )

    def exec_create(self, container_id: str, cmd: list[str]) -> dict[str, str]:
        self.execs.append(cmd)
        self.clock.now += self.cost
        exec_id = f"exec{len(self.execs)}"
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if step is not HANG:
            self.answers[exec_id] = step
        return {"Id": exec_id}

    def exec_start(self, exec_id: str) -> bytes:
        if exec_id not in self.answers:
            self.release.wait(30)
            return b""
        return self.answers[exec_id][0]

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        output, code = self.answers.get(exec_id, (b"", 137))
        started = not output.startswith(b"OCI runtime exec failed")
        return {"ExitCode": code, "Running": False, "Pid": 4242 if started else 0}


@dataclass
class FakeClient:
    api: FakeApi


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def gate(
    script: list[tuple[bytes, int] | None],
    clock: FakeClock,
    *,
    probe: Probe | None = None,
    timeout: float = 2.5,
    retries: int | None = None,
) -> tuple[HealthReport, FakeApi]:
    api = FakeApi(script, clock)
    probe = probe or Probe("healthcheck", ("/bin/sh", "-c", "check"), shell=("/bin/sh", "-c"))
    try:
        report = wait_healthy(
            cast("Any", FakeClient(api)),
            OLD_ID,
            probe,
            timeout=timeout,
            interval=0.001,
            retries=retries,
            clock=clock,
        )
    finally:
        api.release.set()
    return report, api


def test_an_attempt_cut_off_by_the_deadline_keeps_the_last_answer(clock: FakeClock) -> None:
    # Two probes answer "db not ready" at once; the third starts 0.1 s before the deadline and
    # is cut off: the report still says what the probe said, not that it "did not finish".
    report, api = gate([(b"db not ready\n", 1), (b"db not ready\n", 1), HANG], clock, timeout=2.1)

    assert not report.healthy and len(api.execs) == 3
    assert report.reason == "not healthy within 2.1s; last probe exited 1: db not ready"
    assert (report.last_exit_code, report.last_output) == (1, "db not ready\n")


def test_the_retry_limit_names_the_last_answer(clock: FakeClock) -> None:
    report, _ = gate([(b"starting\ndb not ready\n", 1)], clock, timeout=60, retries=3)

    assert report.reason == "the probe failed 3 times; last probe exited 1: db not ready"
    assert report.attempts == 3 and report.last_exit_code == 1


def test_a_probe_that_always_hangs_reports_the_timeout(clock: FakeClock) -> None:
    probe = Probe("healthcheck", ("/check",), timeout=0.05)
    report, api = gate([HANG], clock, probe=probe, timeout=2.5)

    assert len(api.execs) == 3
    assert report.reason.startswith(
        "not healthy within 2.5s; the probe never finished within its 0.05s timeout"
    )
    assert report.last_exit_code is None
    assert "did not finish" in report.last_output


def test_a_probe_that_hangs_past_the_deadline_says_so(clock: FakeClock) -> None:
    report, _ = gate([HANG], clock, probe=Probe("healthcheck", ("/check",), timeout=30), timeout=1)

    assert report.reason.startswith(
        "not healthy within 1s; the probe was still running when the time was up"
    )
    assert "rotate --timeout" in report.reason


def test_hangs_after_an_answer_name_both(clock: FakeClock) -> None:
    probe = Probe("healthcheck", ("/check",), timeout=0.05)
    report, _ = gate([(b"db not ready\n", 1), HANG], clock, probe=probe, timeout=2.5)

    assert report.reason == (
        "not healthy within 2.5s; the last probe that finished exited 1: db not ready, "
        "later ones did not finish within 0.05s"
    )
    assert report.last_exit_code == 1


@pytest.mark.parametrize(
    ("probe", "docker_says", "expected"),
    [
        (
            probe_for(ContainerView(inspect_doc(Config__Healthcheck={"Test": ["CMD-SHELL", "x"]}))),
            NO_SHELL,
            [
                'exec: "/bin/sh": stat /bin/sh: no such file or directory;',
                "the image has no /bin/sh: write the HEALTHCHECK in exec form",
                "dso.health.tcp or dso.health.http label",
            ],
        ),
        (
            probe_for(ContainerView(inspect_doc(Config__Labels={"dso.health.exec": "test -f x"}))),
            NO_SHELL,
            ["the image has no /bin/sh: write the dso.health.exec label as a JSON array"],
        ),
        (
            probe_for(ContainerView(inspect_doc(Config__Healthcheck={"Test": ["CMD", "curl"]}))),
            NO_CURL,
            [
                'exec: "curl": executable file not found in $PATH;',
                "the image has no curl on its PATH: change the HEALTHCHECK",
            ],
        ),
    ],
    ids=["shell-healthcheck", "shell-label", "not-in-path"],
)
def test_a_probe_that_cannot_run_fails_at_once(
    clock: FakeClock, probe: Probe, docker_says: bytes, expected: list[str]
) -> None:
    report, api = gate([(docker_says, 126)], clock, probe=probe, timeout=20)

    assert len(api.execs) == 1 and not report.healthy
    assert report.reason.startswith("the probe cannot run in the container: ")
    for text in expected:
        assert text in report.reason
    assert report.last_exit_code == 126 and report.last_output == _cap(docker_says)


def test_a_shell_that_exits_126_is_an_ordinary_failure(clock: FakeClock) -> None:
    # The shell ran and reported a script it could not execute: retried, not "cannot run".
    report, api = gate([(b"sh: /ready: Permission denied\n", 126)], clock, timeout=2.5)

    assert len(api.execs) == 3
    assert report.reason == (
        "not healthy within 2.5s; last probe exited 126: sh: /ready: Permission denied"
    )
