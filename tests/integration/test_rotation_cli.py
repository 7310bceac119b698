"""`docker dso rotate` and `recover` as a user runs them: plans, JSON, exit codes, and the
canary: a secret value never reaches output, logs, the journal or the lock files."""

from __future__ import annotations

import json
import secrets

import pytest

from tests.integration.rotation_support import Cli, Scope, cli, referenced, scope

pytestmark = pytest.mark.integration
__all__ = ["cli", "scope"]


def test_dry_run_plans_and_touches_nothing(scope: Scope, cli: Cli) -> None:
    network = scope.network("net")
    cli.set_secret("app/msg", "v1")
    web = scope.web("web", network, msg="v1", labels=referenced("MSG", "dso://app/msg"))

    unchanged = cli.run("rotate", web.name, "--dry-run")
    assert unchanged.returncode == 0, unchanged.stderr
    assert "up to date" in unchanged.stdout

    cli.set_secret("app/msg", "v2")
    plan = cli.run("rotate", web.name, "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert f"{web.name} ({web.id[:12]}): would rotate with rolling" in plan.stdout
    assert "MSG" in plan.stdout and "dso://app/msg  local:1 -> local:2  (env)" in plan.stdout
    assert "why: auto: no fixed host ports" in plan.stdout
    assert "health check: healthcheck" in plan.stdout
    as_json = json.loads(cli.run("rotate", web.name, "--dry-run", "--json").stdout)
    (result,) = as_json["rotations"]
    assert result["status"] == "planned" and result["plan"]["strategy"] == "rolling"
    assert result["plan"]["changed"] == [
        {
            "variable": "MSG",
            "reference": "dso://app/msg",
            "delivery": "env",
            "from": "local:1",
            "to": "local:2",
        }
    ]
    assert scope.inspect(web.name)["Id"] == web.id and cli.journal() == []


def test_rotation_never_shows_the_value(scope: Scope, cli: Cli) -> None:
    canary = "CANARY-" + secrets.token_hex(12)
    network = scope.network("net")
    cli.set_secret("app/msg", "v1")
    web = scope.web("web", network, msg="v1", labels=referenced("MSG", "dso://app/msg"))
    cli.set_secret("app/msg", canary)

    done = cli.run("--log-level", "debug", "rotate", web.name, "--json")

    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)["rotations"]
    assert result["status"] == "completed"
    assert result["trace_id"] in done.stderr  # every log line of the rotation carries it
    assert scope.exec(web.name, "wget", "-q", "-O-", "http://127.0.0.1/") == canary + "\n"
    recovered = cli.run("--log-level", "debug", "recover", "--json")
    texts = [done.stdout, done.stderr, recovered.stdout, recovered.stderr]
    texts += [p.read_text() for p in (cli.home / "state").iterdir() if p.is_file()]
    texts += [p.read_text() for p in (cli.home / "locks").iterdir()]
    audit = cli.home / "logs" / "audit.jsonl"  # what extensions were given, line by line
    assert '"rotation_completed"' in audit.read_text()
    texts += [p.read_text() for p in (cli.home / "logs").iterdir() if p.is_file()]
    assert not [t for t in texts if canary in t]


def test_errors_have_their_exit_codes(scope: Scope, cli: Cli) -> None:
    missing = cli.run("rotate", scope.name("nope"))
    assert missing.returncode == 6
    assert f"no container named '{scope.name('nope')}'" in missing.stderr

    network = scope.network("net")
    plain = scope.web("plain", network)
    assert "up to date" in cli.run("rotate", plain.name).stdout
    # --force rotates a container even without references (same values, new container).
    forced = cli.run("rotate", plain.name, "--force")
    assert forced.returncode == 0, forced.stderr
    assert scope.inspect(plain.name)["Id"] != plain.id

    bad = cli.run("rotate", plain.name, "--force", "--strategy", "reload")
    assert bad.returncode == 2
    assert "reload needs dsofile:// secrets" in bad.stderr
