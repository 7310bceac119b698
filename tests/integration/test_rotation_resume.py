"""An interrupted rotation is finished by `docker dso recover`; a refused one is not.

- the Docker daemon goes away in the middle of a swap (simulated: the daemon refuses the
  connection for one call, as it does while dockerd restarts): the engine rolls back with cause
  ``docker``; `recover` rotates the container again with the current value, once;
- dso is killed while the new container is being health-gated: the copy runs without the
  service's alias and with restart policy ``no`` (a daemon restart would not bring it back), and
  `recover` undoes it and rotates again;
- a new container that fails its health gate stays rolled back, and `recover` says why.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import requests

from kernel.config.model import RotationConfig
from kernel.extensions.events import RotationEvent
from kernel.rotation.engine import RotationEngine
from kernel.rotation.journal import Journal
from kernel.rotation.locks import TargetLocks
from kernel.rotation.model import ChangedReference, Changes, NullObserver
from kernel.secret_value import SecretValue
from tests.integration.rotation_support import Cli, Scope, cli, referenced, scope

pytestmark = pytest.mark.integration
__all__ = ["cli", "scope"]


class DaemonGoneOnce:
    """The Docker API client, except that the first ``rename`` finds no daemon."""

    def __init__(self, api: Any) -> None:
        self._api = api
        self.failed = False

    def rename(self, *args: Any, **kwargs: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise requests.exceptions.ConnectionError("connection refused")
        return self._api.rename(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


class Client:
    def __init__(self, real: Any) -> None:
        self._real = real
        self.api = DaemonGoneOnce(real.api)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def env_of(scope: Scope, name: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in scope.inspect(name)["Config"]["Env"])


def test_a_lost_daemon_mid_swap_is_finished_by_recover(scope: Scope, cli: Cli) -> None:
    network = scope.network("net")
    cli.set_secret("app/msg", "v1")
    web = scope.web("web", network, msg="v1", labels=referenced("MSG", "dso://app/msg"))
    cli.set_secret("app/msg", "v2")
    engine = RotationEngine(
        Client(scope.client),
        journal=Journal(cli.home / "state"),
        locks=TargetLocks(cli.home / "locks"),
        config=RotationConfig(strategy="rolling", timeout=10.0),
    )
    outcome = engine.rotate(web.name, _v2)

    assert outcome.status == "rolled_back", outcome.error
    assert "the Docker daemon does not answer" in (outcome.error or "")
    assert env_of(scope, web.name)["MSG"] == "v1" and scope.names() == [web.name]
    (entry,) = cli.journal()
    assert entry["cause"] == "docker" and entry["resumed"] is None

    done = cli.run("recover")

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"rotating {web.name} again (an interruption had undone it):" in done.stdout
    assert f"{web.name}: rotated with rolling" in done.stdout
    assert env_of(scope, web.name)["MSG"] == "v2"
    assert scope.exec(web.name, "wget", "-q", "-O-", "http://127.0.0.1/") == "v2\n"
    assert scope.names() == [web.name]
    entries = {e["id"]: e for e in cli.journal()}
    assert entries[entry["id"]]["resumed"]["status"] == "completed"
    # Once only: a second recover has nothing left to do.
    again = cli.run("recover", "--json")
    assert json.loads(again.stdout)["resumed"] == []
    assert "v2" not in done.stdout + again.stdout


def test_killed_during_the_gate_the_copy_has_no_alias_and_no_restart_policy(
    scope: Scope, cli: Cli
) -> None:
    network = scope.network("net")
    cli.set_secret("app/msg", "v1")
    web = scope.web(
        "web",
        network,
        msg="v1",
        labels=referenced("MSG", "dso://app/msg"),
        restart_policy={"Name": "always"},
    )
    cli.set_secret("app/msg", "v2")

    killed = cli.run(
        "rotate",
        web.name,
        extra_env={"DSO_TEST_MODE": "1", "DSO_FAULT_KILL_AFTER_STEP": "health_gate"},
    )

    assert killed.returncode == -9
    (copy,) = [n for n in scope.names() if "_dso_new_" in n]
    copied = scope.inspect(copy)
    assert copied["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert "web" not in (copied["NetworkSettings"]["Networks"][network]["Aliases"] or [])
    assert "web" in scope.inspect(web.name)["NetworkSettings"]["Networks"][network]["Aliases"]

    report = json.loads(cli.run("recover", "--json").stdout)

    assert [r["cause"] for r in report["recovered"]] == ["crash"]
    assert [t["status"] for t in report["resumed"]] == ["completed"]
    current = scope.inspect(web.name)
    assert env_of(scope, web.name)["MSG"] == "v2"
    assert current["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert "web" in current["NetworkSettings"]["Networks"][network]["Aliases"]
    assert scope.names() == [web.name]


def test_a_failed_health_gate_stays_rolled_back_and_recover_says_why(
    scope: Scope, cli: Cli
) -> None:
    network = scope.network("net")
    cli.set_secret("app/msg", "v1")
    web = scope.web("web", network, msg="v1", labels=referenced("MSG", "dso://app/msg"))
    cli.set_secret("app/msg", "bad")  # the HEALTHCHECK fails for MSG=bad

    failed = cli.run("rotate", web.name, "--timeout", "3")
    assert failed.returncode == 9
    done = cli.run("recover", "--json")

    report = json.loads(done.stdout)
    assert report["resumed"] == [] and report["recovered"] == []
    (entry,) = cli.journal()
    assert entry["status"] == "rolled_back" and entry["cause"] == "health_gate"
    assert env_of(scope, web.name)["MSG"] == "v1"


def _v2(view: Any) -> Changes:
    """What `rotate` would fetch for the container: app/msg moved from version 1 to 2."""
    return Changes(
        env={"MSG": SecretValue("v2")},
        labels={"dso.versions": json.dumps({"MSG": "local:2"})},
        references=(ChangedReference("MSG", "dso://app/msg", "env", "local:1", "local:2"),),
    )


class StopOnStart(NullObserver):
    """Requests a stop as the rotation starts (as SIGTERM to the agent would)."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop

    def started(self, event: RotationEvent) -> None:
        self.stop.set()


def test_a_stop_before_the_swap_rolls_back_and_recover_finishes_it(scope: Scope, cli: Cli) -> None:
    network = scope.network("net")
    cli.set_secret("app/msg", "v1")
    web = scope.web("web", network, msg="v1", labels=referenced("MSG", "dso://app/msg"))
    cli.set_secret("app/msg", "v2")
    stop = threading.Event()
    engine = RotationEngine(
        scope.client,
        journal=Journal(cli.home / "state"),
        locks=TargetLocks(cli.home / "locks"),
        config=RotationConfig(strategy="rolling", timeout=10.0),
        observer=StopOnStart(stop),
    )

    outcome = engine.rotate(web.name, _v2, stop=stop)

    assert outcome.status == "rolled_back" and "stopped before the swap" in (outcome.error or "")
    assert scope.names() == [web.name] and env_of(scope, web.name)["MSG"] == "v1"
    (entry,) = cli.journal()
    assert entry["cause"] == "stopped"
    report = json.loads(cli.run("recover", "--json").stdout)
    assert [t["status"] for t in report["resumed"]] == ["completed"]
    assert env_of(scope, web.name)["MSG"] == "v2"
