"""kill -9 at every journaled step, then `docker dso recover`: exactly one container under the
canonical name, running, no leftovers, and the change rolled out (recovery finishes the swap, or
undoes it and rotates again); a failed health gate stays undone.

The rotating process is the real CLI with the test-only fault switch
(DSO_TEST_MODE=1 DSO_FAULT_KILL_AFTER_STEP=<step>): it SIGKILLs itself right after the journal
entry announcing <step> is durable, before taking the step.
"""

from __future__ import annotations

import json

import pytest

from kernel.rotation.states import SEQUENCES, Strategy
from tests.integration.rotation_support import (
    Cli,
    Scope,
    cli,
    referenced,
    scope,
)

pytestmark = pytest.mark.integration
__all__ = ["cli", "scope"]

CASES = [
    *((Strategy.ROLLING, step.value, "v2") for step in SEQUENCES[Strategy.ROLLING]),
    *((Strategy.RESTART, step.value, "v2") for step in SEQUENCES[Strategy.RESTART]),
    # A failing health gate, killed while rolling back.
    (Strategy.ROLLING, "rollback", "bad"),
    (Strategy.RESTART, "rollback", "bad"),
]


def env_of(scope: Scope, name: str) -> dict[str, str]:
    env = scope.inspect(name)["Config"]["Env"]
    return dict(item.split("=", 1) for item in env)


@pytest.mark.parametrize(
    ("strategy", "step", "value"), CASES, ids=[f"{s.value}-{step}" for s, step, _ in CASES]
)
def test_recover_converges_after_kill_at_every_step(
    scope: Scope, cli: Cli, strategy: Strategy, step: str, value: str
) -> None:
    network = scope.network("net")
    cli.set_secret("app/msg", "v1")
    web = scope.web(
        "web",
        network,
        msg="v1",
        labels=referenced("MSG", "dso://app/msg"),
        restart_policy={"Name": "unless-stopped"},
    )
    cli.set_secret("app/msg", value)

    killed = cli.run(
        "rotate",
        web.name,
        "--strategy",
        strategy.value,
        "--timeout",
        "3",
        extra_env={"DSO_TEST_MODE": "1", "DSO_FAULT_KILL_AFTER_STEP": step},
    )
    assert killed.returncode == -9, killed.stderr
    (entry,) = cli.journal()
    assert entry["status"] == "in_progress" and entry["step"] == step

    recovered = cli.run("recover", "--json")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    report = json.loads(recovered.stdout)
    assert [r["rotation_id"] for r in report["recovered"]] == [entry["id"]]
    assert report["recovered"][0]["status"] == "recovered"

    # Exactly one container, under the canonical name, running; nothing left over.
    assert scope.names() == [web.name]
    current = scope.inspect(web.name)
    assert current["State"]["Running"]
    assert scope.exec(web.name, "wget", "-q", "-O-", "http://127.0.0.1/") is not None
    entries = {e["id"]: e for e in cli.journal()}
    entry = entries[entry["id"]]
    assert entry["status"] == "recovered" and entry["recovery"]["action"] in (
        "forward",
        "rolled_back",
    )
    forward = entry["recovery"]["action"] == "forward"
    if value == "bad":
        # Killed while undoing a failed health gate: stays undone, and says why.
        assert not forward and entry["cause"] == "health_gate" and entry["resumed"] is None
        assert report["resumed"] == []
        assert env_of(scope, web.name)["MSG"] == "v1"
        assert report["recovered"][0]["cause"] == "health_gate"
        return
    assert entry["cause"] == "crash"
    # Either recovery finished the swap, or it undid it and rotated again: v2 either way.
    assert (entry["resumed"] is None) == forward
    assert len(report["resumed"]) == (0 if forward else 1)
    if not forward:
        (again,) = report["resumed"]
        assert again["status"] == "completed", again
        (rotation,) = again["rotations"]
        assert rotation["status"] == "completed"
    assert scope.names() == [web.name]
    assert env_of(scope, web.name)["MSG"] == "v2"
    assert scope.exec(web.name, "wget", "-q", "-O-", "http://127.0.0.1/") == "v2\n"
    # The restart policy is the original one, whichever way it went.
    assert scope.inspect(web.name)["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    # Nothing is left to do, and the next recover does not rotate again.
    assert json.loads(cli.run("recover", "--json").stdout)["resumed"] == []
    again = cli.run("rotate", web.name, "--strategy", strategy.value, "--timeout", "10")
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stdout
