"""Two processes rotating the same container: one waits (and then decides on what the first
left, never on what it saw before waiting) or is refused with a clear message; never do both
"succeed" on stale state."""

from __future__ import annotations

import json

import pytest

from tests.integration.rotation_support import (
    Cli,
    Scope,
    cli,
    referenced,
    scope,
    wait_for,
)

pytestmark = pytest.mark.integration
__all__ = ["cli", "scope"]

#: Each probe takes ~1.5 s, so the first rotation holds the lock that long.
SLOW_PROBE = {"dso.health.exec": "sleep 1.5"}


def start_first(cli: Cli, *args: str):
    """Start a rotation and return once it holds the lock (its journal entry exists)."""
    first = cli.popen("rotate", *args)
    wait_for(lambda: cli.journal() or first.poll() is not None, timeout=30)
    assert first.poll() is None, first.communicate()
    return first


def setup(scope: Scope, cli: Cli):
    network = scope.network("net")
    cli.set_secret("app/msg", "v1")
    labels = {**referenced("MSG", "dso://app/msg"), **SLOW_PROBE}
    web = scope.web("web", network, msg="v1", labels=labels)
    cli.set_secret("app/msg", "v2")
    return web


def test_second_rotation_is_refused_while_the_first_runs(scope: Scope, cli: Cli) -> None:
    web = setup(scope, cli)
    first = start_first(cli, web.name)

    second = cli.run("rotate", web.name, "--wait", "0")
    out, err = first.communicate(timeout=60)

    assert first.returncode == 0, err
    assert "rotated with rolling" in out
    assert second.returncode == 9
    assert f"another rotation of {web.name} is in progress (pid {first.pid}" in second.stderr
    assert "nothing was changed" in second.stderr
    assert "rotated" not in second.stdout
    assert scope.names() == [web.name]
    assert [e["status"] for e in cli.journal()] == ["completed"]


def test_a_waiting_rotation_decides_on_fresh_state(scope: Scope, cli: Cli) -> None:
    web = setup(scope, cli)
    first = start_first(cli, web.name)

    second = cli.run("rotate", web.name, "--wait", "60", "--json")
    _out, err = first.communicate(timeout=60)

    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    (result,) = json.loads(second.stdout)["rotations"]
    # It waited for the lock, then found the container already holding v2: nothing to do.
    assert result["status"] == "up_to_date"
    assert result["lock_waited"] > 0.5
    assert [e["status"] for e in cli.journal()] == ["completed"]
    assert scope.names() == [web.name]


def test_forced_rotations_queue_and_chain(scope: Scope, cli: Cli) -> None:
    web = setup(scope, cli)
    first = start_first(cli, web.name, "--force")

    second = cli.run("rotate", web.name, "--force", "--wait", "60")
    first.communicate(timeout=60)

    assert first.returncode == 0 and second.returncode == 0, second.stderr
    one, two = cli.journal()
    assert one["status"] == two["status"] == "completed"
    # The second replaced the container the first created: it planned after the first ended.
    assert two["old_id"] == one["new_id"]
    assert two["lock"]["contended"] is True and two["lock"]["waited"] > 1.0
    assert scope.names() == [web.name]
    assert scope.inspect(web.name)["Id"] == two["new_id"]
