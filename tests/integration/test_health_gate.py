"""The health gate's verdict on the real daemon: what a rotation that fails its gate reports.

Each test rotates a container whose HEALTHCHECK misbehaves in one way and reads what the user
sees: the rolled-back outcome's error (the line `docker dso rotate` prints) and the journal's
health report (`docker dso status`).
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from kernel.rotation.model import Outcome
from tests.integration.rotation_support import (
    Scope,
    engine_factory,
    env_changes,
    scope,
)

pytestmark = pytest.mark.integration
__all__ = ["engine_factory", "scope"]

SECOND = 10**9


def healthcheck(test: list[str], timeout: float = 10.0) -> dict[str, Any]:
    """Docker's own check every 30 s: within a test only dso's probing runs it."""
    return {"test": test, "interval": 30 * SECOND, "timeout": int(timeout * SECOND), "retries": 3}


def rotate(scope: Scope, engine_factory: Any, container: Any, timeout: float) -> Outcome:
    outcome: Outcome = engine_factory(timeout=timeout).rotate(
        container.name, env_changes(MSG="new")
    )
    assert outcome.status == "rolled_back", outcome
    assert scope.names() == [container.name]
    return outcome


@pytest.fixture(scope="module")
def no_shell_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """FROM scratch with only a static busybox at /busybox and a shell-form HEALTHCHECK.

    Like a distroless image whose Dockerfile says ``HEALTHCHECK CMD <command>``: Docker stores
    it as ``CMD-SHELL``, to be run by ``/bin/sh -c``, which the image does not have.
    """
    context = tmp_path_factory.mktemp("noshell")
    shutil.copy(shutil.which("busybox") or "/bin/busybox", context / "busybox")
    (context / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /busybox\n"
        "HEALTHCHECK --interval=30s --timeout=20s CMD /busybox true\n"
        'ENTRYPOINT ["/busybox", "sleep", "600"]\n'
    )
    tag = f"dsotest-health-noshell:{secrets.token_hex(4)}"
    client = docker.from_env()
    try:
        client.images.build(path=str(context), tag=tag, rm=True, forcerm=True)
        yield tag
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            client.images.remove(tag, force=True)
        client.close()


def test_a_probe_that_fails_at_once_reports_its_exit_code_and_output(
    scope: Scope, engine_factory: Any
) -> None:
    check = healthcheck(["CMD-SHELL", "echo db not ready; exit 1"])
    app = scope.run("app", ["sleep", "600"], network=scope.network("net"), healthcheck=check)

    outcome = rotate(scope, engine_factory, app, timeout=2.0)

    assert "not healthy within 2s; last probe exited 1: db not ready" in (outcome.error or "")
    assert "did not finish" not in (outcome.error or "")
    assert outcome.health is not None
    assert outcome.health["last_exit_code"] == 1
    assert outcome.health["last_output"] == "db not ready\n"
    assert outcome.health["attempts"] >= 3


def test_a_probe_cut_off_by_the_deadline_does_not_hide_the_previous_answer(
    scope: Scope, engine_factory: Any
) -> None:
    # The first probe answers "db not ready" at once; every later one hangs until the gate's
    # deadline (2 s, inside the HEALTHCHECK's own 10 s timeout) cuts it off.
    check = healthcheck(
        ["CMD-SHELL", "[ -e /probed ] && sleep 30; touch /probed; echo db not ready; exit 1"]
    )
    app = scope.run("app", ["sleep", "600"], network=scope.network("net"), healthcheck=check)

    outcome = rotate(scope, engine_factory, app, timeout=2.0)

    assert "not healthy within 2s; last probe exited 1: db not ready" in (outcome.error or "")
    assert outcome.health is not None
    assert (outcome.health["last_exit_code"], outcome.health["last_output"]) == (
        1,
        "db not ready\n",
    )


def test_a_shell_form_healthcheck_in_an_image_without_a_shell_fails_at_once(
    scope: Scope, engine_factory: Any, no_shell_image: str
) -> None:
    app = scope.client.containers.run(
        no_shell_image,
        name=scope.name("distroless"),
        labels=scope.labels(),
        network=scope.network("net"),
        init=True,
        detach=True,
    )

    started = time.monotonic()
    outcome = rotate(scope, engine_factory, app, timeout=20.0)
    took = time.monotonic() - started

    assert took < 3.0, f"the gate waited {took:.1f}s for a probe that cannot run"
    error = outcome.error or ""
    assert 'the probe cannot run in the container: exec: "/bin/sh": stat /bin/sh' in error
    assert "the image has no /bin/sh: write the HEALTHCHECK in exec form" in error
    assert outcome.health is not None
    assert outcome.health["attempts"] == 1 and outcome.health["last_exit_code"] == 126


def test_a_probe_program_missing_from_the_image_fails_at_once(
    scope: Scope, engine_factory: Any
) -> None:
    check = healthcheck(["CMD", "curl", "-f", "http://127.0.0.1/"])
    app = scope.run("app", ["sleep", "600"], network=scope.network("net"), healthcheck=check)

    started = time.monotonic()
    outcome = rotate(scope, engine_factory, app, timeout=20.0)

    assert time.monotonic() - started < 3.0
    error = outcome.error or ""
    assert 'exec: "curl": executable file not found in $PATH' in error
    assert "the image has no curl on its PATH: change the HEALTHCHECK" in error


@pytest.mark.parametrize(
    ("probe_timeout", "says"),
    [
        (10.0, "not healthy within 2s; the probe was still running when the time was up"),
        (0.5, "not healthy within 2s; the probe never finished within its 0.5s timeout"),
    ],
    ids=["past-the-deadline", "past-its-own-timeout"],
)
def test_a_probe_that_always_hangs_reports_the_timeout(
    scope: Scope, engine_factory: Any, probe_timeout: float, says: str
) -> None:
    check = healthcheck(["CMD-SHELL", "sleep 30"], timeout=probe_timeout)
    app = scope.run("app", ["sleep", "600"], network=scope.network("net"), healthcheck=check)

    started = time.monotonic()
    outcome = rotate(scope, engine_factory, app, timeout=2.0)

    assert time.monotonic() - started >= 2.0
    assert says in (outcome.error or "")
    assert outcome.health is not None and outcome.health["last_exit_code"] is None
