"""Rolling rotations on the real daemon: zero downtime, health failures roll back, vetoes."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.extensions.events import RotationEvent, Veto
from kernel.rotation import recover
from kernel.rotation.engine import lock_key
from kernel.rotation.model import NullObserver
from tests.integration.rotation_support import (
    LOOPING_CLIENT,
    Scope,
    assert_always_served,
    engine_factory,
    env_changes,
    scope,
    wait_for,
)

pytestmark = pytest.mark.integration
__all__ = ["engine_factory", "scope"]


def counts(scope: Scope, client: str) -> tuple[int, int, str]:
    text = scope.exec(client, "cat", "/tmp/counts") or "0 0 none"
    ok, fail, last = text.split(maxsplit=2)
    return int(ok), int(fail), last.strip()


def test_zero_downtime_rolling_rotation(scope: Scope, engine_factory) -> None:
    network = scope.network("net")
    web = scope.web("web", network, msg="old")
    client = scope.run("client", ["sh", "-c", LOOPING_CLIENT], network=network)
    wait_for(lambda: counts(scope, client.name)[0] >= 20)

    outcome = engine_factory().rotate(web.name, env_changes(MSG="new"))

    assert outcome.status == "completed", outcome.error
    assert outcome.plan is not None and outcome.plan.strategy.value == "rolling"
    wait_for(lambda: counts(scope, client.name)[2] == "new")
    ok_before_stop = counts(scope, client.name)[0]
    wait_for(lambda: counts(scope, client.name)[0] >= ok_before_stop + 20)
    scope.exec(client.name, "touch", "/tmp/stop")
    wait_for(lambda: scope.exec(client.name, "pidof", "sleep"))
    ok, fail, last = counts(scope, client.name)
    print(f"requests: {ok} served, {fail} cut")  # shown by `pytest -rP`
    assert_always_served(scope.exec(client.name, "cat", "/tmp/failures") if fail else "", 1)
    assert ok > 50 and last == "new"
    # One container under the name, the new one, and no leftovers.
    assert scope.names() == sorted([client.name, web.name])
    new = scope.inspect(web.name)
    assert new["Id"] == outcome.new_id != web.id
    assert "MSG=new" in new["Config"]["Env"]
    assert new["Config"]["Labels"]["dso.rotation"] == outcome.rotation_id
    aliases = new["NetworkSettings"]["Networks"][network]["Aliases"]
    assert "web" in aliases and web.id[:12] not in aliases
    assert set(outcome.phases) >= {"create_new", "start_new", "health_gate", "stop_old"}


@pytest.mark.parametrize(
    ("msg", "timeout", "reason"),
    [("bad", 10.0, "the probe failed"), ("slow", 1.5, "not healthy within 1.5s")],
    ids=["failure", "timeout"],
)
def test_unhealthy_new_container_rolls_back(
    scope: Scope, engine_factory, tmp_path: Path, msg: str, timeout: float, reason: str
) -> None:
    network = scope.network("net")
    web = scope.web("web", network, msg="old")
    before = scope.inspect(web.name)
    engine = engine_factory(timeout=timeout, retries=3 if msg == "bad" else None)

    outcome = engine.rotate(web.name, env_changes(MSG=msg))

    assert outcome.status == "rolled_back"
    assert reason in (outcome.error or "")
    after = scope.inspect(web.name)
    # The old container is untouched: same id, never restarted, still on its network alias.
    assert after["Id"] == before["Id"]
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert after["State"]["Running"]
    assert "web" in after["NetworkSettings"]["Networks"][network]["Aliases"]
    assert scope.exec(web.name, "wget", "-q", "-O-", "http://127.0.0.1/") == "old\n"
    assert scope.names() == [web.name]
    (entry,) = engine.journal.entries()
    assert entry.status == "rolled_back" and entry.step == "rollback"
    assert entry.health is not None and not entry.health["healthy"]
    assert entry.health["attempts"] >= 1
    if msg == "bad":
        assert entry.health["last_exit_code"] == 1


def test_rollback_disabled_keeps_the_new_container_for_recover(
    scope: Scope, engine_factory
) -> None:
    network = scope.network("net")
    web = scope.web("web", network)
    engine = engine_factory(rollback_on_failure=False, timeout=2.0)

    outcome = engine.rotate(web.name, env_changes(MSG="bad"))

    assert outcome.status == "failed"
    kept = [n for n in scope.names() if "_dso_new_" in n]
    assert len(kept) == 1 and not scope.inspect(kept[0])["State"]["Running"]
    assert scope.inspect(web.name)["Id"] == web.id
    results = recover(scope.client, engine.journal, engine.locks, lock_key=lock_key)
    assert [(r.action, r.status) for r in results] == [("rolled_back", "recovered")]
    assert scope.names() == [web.name]


class Vetoing(NullObserver):
    def before_swap(self, event: RotationEvent) -> Veto | None:
        assert event.new_container and event.old_container
        return Veto("change-freeze", "no deploys on Friday")


def test_a_veto_rolls_back(scope: Scope, engine_factory) -> None:
    network = scope.network("net")
    web = scope.web("web", network)
    engine = engine_factory()
    engine.observer = Vetoing()

    outcome = engine.rotate(web.name, env_changes(MSG="new"))

    assert outcome.status == "rolled_back"
    assert "vetoed by extension 'change-freeze': no deploys on Friday" in (outcome.error or "")
    assert scope.names() == [web.name]
    assert scope.inspect(web.name)["Id"] == web.id
