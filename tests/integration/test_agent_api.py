"""The agent's socket API on the real ``dso agent``: the spec's commands verbatim (curl, nc, jq),
both dialects answering the same actions, a real compose service rotated through the socket,
sync and reload, event streams in both dialects.

One agent on one compose service serves the module (the tests run in order: the rotations
change what later tests see only in ways they expect). Peer credentials of a real user and the
socket file's life: test_agent_api_peers.py; abuse: test_agent_api_abuse.py.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.agent_api_support import (
    EventReader,
    audit_lines,
    healthy,
    plain_home,
    running,
    sh,
    socket_of,
)
from tests.integration.agent_support import AgentProcess, serving, wait_until
from tests.integration.compose_support import ComposeProject, docker
from tests.integration.rotation_compose_support import WEB_SERVICE, container_id, write_scripts
from tests.socket_support import http, line, parse_http

pytestmark = pytest.mark.integration

READING = ["health", "status", "rotations", "containers", "providers", "metrics"]
MUTATING = ["rotate", "sync", "reload"]
OBSERVABILITY = {
    "traces",
    "provider_latency",
    "lock_contention",
    "health_checks",
    "circuit_breakers",
}


@dataclass
class Shared:
    home: ComposeProject
    agent: AgentProcess
    sock: Path

    @property
    def web(self) -> str:
        return f"{self.home.name}-web-1"


#: The shared agent's configuration: the local provider notices changes by looking once a
#: minute, so that a change is rotated by the request that asks for it.
CONFIG = """\
version: 1
default_provider: local
providers:
  local:
    type: local
    watch: poll
    poll_interval: 60
agent:
  watch:
    polling_interval: {poll}
    debounce_window: 1s
  rotation:
    timeout: 30s
"""


def configure_shared(home: ComposeProject, poll: str = "1h") -> None:
    config = Path(home.env["DSO_HOME"]) / "config.yaml"
    config.write_text(CONFIG.format(poll=poll))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    root = tmp_path_factory.mktemp("api")
    home = plain_home(root)
    configure_shared(home)
    write_scripts(home)
    home.write(
        "compose.yaml",
        "services:\n  web:" + WEB_SERVICE + "    environment:\n      MSG: dso://api/msg\n",
    )
    home.set_secret("api/msg", "v1")
    try:
        home.dso("up", "-d")
        with running(home, root / "agent.log") as agent:
            sock = socket_of(home)
            wait_until(lambda: healthy(sock))
            yield Shared(home, agent, sock)
    finally:
        docker("compose", "-p", home.name, "down", "-v", "--remove-orphans", "--timeout", "1")


# -- the spec's commands, verbatim ----------------------------------------------------------------


def test_spec_curl_health(shared: Shared) -> None:
    done = sh(f"curl --unix-socket {shlex.quote(str(shared.sock))} http://health", shared.home.env)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["live"] is True and doc["status"] == "ok" and doc["problems"] == []
    assert shared.agent.proc is not None and doc["pid"] == shared.agent.proc.pid


def test_spec_nc_status(shared: Shared) -> None:
    command = f'echo \'{{"action":"status"}}\' | nc -U {shlex.quote(str(shared.sock))}'
    started = time.monotonic()
    done = sh(command, shared.home.env, timeout=10)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert seconds < 3, f"nc returned after {seconds:.1f}s"
    (answer,) = done.stdout.splitlines()
    doc = json.loads(answer)
    assert doc["ok"] is True and doc["status"] == 200 and doc["action"] == "status"
    assert doc["result"]["runtime"]["socket"] == str(shared.sock)
    assert shared.web in json.dumps(doc["result"]["containers"])


def test_spec_status_json_observability(shared: Shared) -> None:
    done = sh("docker dso status --json | jq '.observability'", shared.home.env)
    assert done.returncode == 0, done.stderr
    observability = json.loads(done.stdout)
    assert set(observability) >= OBSERVABILITY


# -- one API, two dialects ----------------------------------------------------------------------


def shape(doc: Any, depth: int = 2) -> Any:
    """The keys of ``doc`` down to ``depth`` (values differ from one call to the next)."""
    if isinstance(doc, dict) and depth:
        return {key: shape(value, depth - 1) for key, value in doc.items()}
    if isinstance(doc, list) and depth:
        return [shape(item, depth - 1) for item in doc]
    return type(doc).__name__


def families(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


@pytest.mark.parametrize("action", READING)
def test_both_dialects_answer_each_reading_action_alike(shared: Shared, action: str) -> None:
    over_http = http(shared.sock, "GET", f"/{action}")
    over_lines = line(shared.sock, {"action": action})
    assert over_http.status == over_lines["status"] == 200
    assert over_lines["ok"] is True and over_lines["action"] == action
    if action == "metrics":
        result = over_lines["result"]
        assert over_http.headers["content-type"] == result["content_type"]
        assert families(over_http.body.decode()) == families(result["text"]) != set()
    else:
        assert over_http.headers["content-type"] == "application/json"
        assert shape(over_http.json()) == shape(over_lines["result"])
    # curl's http://<action> is the same action
    by_host = http(shared.sock, "GET", "/", host=action)
    assert by_host.status == 200
    if action != "metrics":
        assert set(by_host.json()) == set(over_http.json())


def test_both_dialects_list_the_managed_container(shared: Shared) -> None:
    over_http = http(shared.sock, "GET", "/containers").json()["containers"]
    over_lines = line(shared.sock, {"action": "containers"})["result"]["containers"]
    assert [c["name"] for c in over_http] == [c["name"] for c in over_lines] == [shared.web]
    (web,) = over_http
    assert web["project"] == shared.home.name and web["service"] == "web"
    assert web["references"]["MSG"]["reference"] == "dso://api/msg"


@pytest.mark.parametrize("action", MUTATING)
def test_mutating_actions_over_get_are_405_and_do_nothing(shared: Shared, action: str) -> None:
    before = len(audit_lines(shared.home))
    done = sh(
        f"curl -s -i --unix-socket {shlex.quote(str(shared.sock))} http://localhost/{action}",
        shared.home.env,
        text=False,
    )
    (answer,) = parse_http(done.stdout)
    assert answer.status == 405 and answer.headers["allow"] == "POST"
    assert answer.json()["error"] == f"{action} changes things: send it as POST"
    assert len(audit_lines(shared.home)) == before  # not audited: nothing was done


def test_an_unknown_action_and_an_unknown_service_are_404(shared: Shared) -> None:
    unknown = line(shared.sock, {"action": "explode"})
    assert unknown["status"] == 404 and "known: containers, events, health" in unknown["error"]
    assert http(shared.sock, "GET", "/explode").status == 404
    nothing = http(shared.sock, "POST", "/rotate", body=b'{"service": "no-such-service"}')
    assert nothing.status == 404
    assert "no managed container matches 'no-such-service'" in nothing.json()["error"]


# -- changing things ----------------------------------------------------------------------------


def test_rotate_a_compose_service_through_the_socket(shared: Shared) -> None:
    """A changed secret the agent has not noticed (its provider looks once a minute here),
    rotated now on request; both event streams follow it by the trace id of the answer."""
    types = "rotation_started,rotation"
    sse = EventReader(shared.sock, "sse", types)
    follower = EventReader(shared.sock, "lines", types)
    try:
        wait_until(lambda: sse.answer is not None and follower.answer is not None, 10)
        assert b"text/event-stream" in sse.answer
        assert follower.answer["ok"] is True
        before = container_id(shared.web)
        shared.home.set_secret("api/msg", "v2")
        done = sh(
            f"curl -s -X POST --unix-socket {shlex.quote(str(shared.sock))} "
            'http://localhost/rotate -d \'{"service":"web"}\'',
            shared.home.env,
        )
        accepted = json.loads(done.stdout)
        assert accepted["accepted"] is True and accepted["force"] is False
        trace = accepted["trace_id"]
        (target,) = accepted["targets"]
        assert target["lock"] == f"service-{shared.home.name}.web"
        for reader in (sse, follower):
            started = reader.wait_for(type="rotation_started", trace_id=trace)
            assert started["trigger"] == "api"
            finished = reader.wait_for(type="rotation", trace_id=trace, timeout=90)
            assert finished["status"] == "completed", finished
            assert finished["target"] == target["lock"]
    finally:
        sse.close()
        follower.close()
    assert container_id(shared.web) != before
    assert serving(shared.web) == "v2\n"
    # the journal, through the socket, says so too
    (entry,) = line(shared.sock, {"action": "rotations", "trace_id": trace})["result"]["rotations"]
    assert entry["status"] == "completed"
    # and the audit log: who asked, and the rotation's why
    audit = audit_lines(shared.home)
    asks = [a for a in audit if a["event"] == "socket_request" and a["action"] == "rotate"]
    (asked,) = [a for a in asks if a["params"] == {"service": "web"}]
    assert asked["outcome"] == "accepted" and asked["caller"]["uid"] == 0
    assert asked["caller"]["user"] == "root"
    assert asked["trace_id"] == trace  # the request and the rotation it queued, linked
    rotated = [a for a in audit if a.get("trace_id") == trace and a is not asked]
    assert "rotation_completed" in {a["event"] for a in rotated}
    assert {a["why"] for a in rotated} == {"api"}
    assert "socket: rotate requested by root (uid 0, pid " in shared.agent.since_start()


def test_a_forced_rotation_of_a_container_over_json_lines(shared: Shared) -> None:
    before = container_id(shared.web)
    request = json.dumps({"action": "rotate", "container": shared.web, "force": True, "id": 5})
    done = sh(f"echo '{request}' | nc -U {shlex.quote(str(shared.sock))}", shared.home.env)
    (answer,) = [json.loads(x) for x in done.stdout.splitlines()]
    assert answer["ok"] is True and answer["status"] == 202 and answer["id"] == 5
    trace = answer["result"]["trace_id"]

    def finished() -> list[dict[str, Any]]:
        found = line(shared.sock, {"action": "rotations", "trace_id": trace})["result"]
        return [r for r in found["rotations"] if r["status"] != "in_progress"]

    wait_until(finished, 90)
    assert [r["status"] for r in finished()] == ["completed"]
    assert container_id(shared.web) != before
    assert serving(shared.web) == "v2\n"


def test_sync_checks_every_provider_now(shared: Shared) -> None:
    """Polling is hourly here: the check (source ``poll``, as a reconciliation) comes from the
    request."""
    checks = EventReader(shared.sock, "lines", "check")
    try:
        wait_until(lambda: checks.answer is not None, 10)
        answer = line(shared.sock, {"action": "sync", "id": "s1"})
        assert answer["status"] == 202 and answer["id"] == "s1"
        assert answer["result"] == {"accepted": True, "detail": "every provider is checked now"}
        check = checks.wait_for(type="check", source="poll", timeout=15)
    finally:
        checks.close()
    assert check["secrets"] == 1 and check["moved"] == 0
    audit = audit_lines(shared.home)
    assert any(a.get("action") == "sync" and a["outcome"] == "accepted" for a in audit)


def test_reload_reads_the_configuration_again(shared: Shared) -> None:
    agent = shared.agent
    loaded = agent.since_start().count("Configuration loaded from")
    configure_shared(shared.home, poll="2h")  # a real change
    answer = http(shared.sock, "POST", "/reload")
    assert answer.status == 202
    assert answer.json() == {"accepted": True, "detail": "the configuration is read again"}
    agent.wait_for("Configuration loaded from", count=loaded + 1, timeout=15)
    again = line(shared.sock, {"action": "reload"})
    assert again["status"] == 202
    agent.wait_for(": unchanged", timeout=15)
    assert healthy(shared.sock)
