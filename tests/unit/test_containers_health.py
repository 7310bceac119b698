"""Which health probe gates a container (labels, HEALTHCHECK, fallback), and the fault switch."""

from __future__ import annotations

import pytest

from kernel.containers.health import _cap, probe_for
from kernel.containers.view import ContainerView
from kernel.errors import UsageError
from kernel.rotation.fault import kill_step
from tests.unit.rotation_fixtures import inspect_doc

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
