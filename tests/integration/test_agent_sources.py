"""The agent with providers that cannot watch (OpenBao KV v2, AWS Secrets Manager on moto):
polling notices changes, the inbound webhook makes it check at once — never trusting the call for
a value — and an outage is survived."""

from __future__ import annotations

import http.client
import json
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.agent_support import AgentProcess, agent, serving, wait_until
from tests.integration.compose_support import ComposeProject, docker, project
from tests.integration.rotation_compose_support import (
    WEB_SERVICE,
    exec_in,
    inspect,
    replicas,
    write_scripts,
)
from tests.integration.rotation_support import free_port
from tests.integration.servers import MotoServer, OpenBao

pytestmark = pytest.mark.integration
__all__ = ["agent", "project"]

TOKEN = "hook-token-9c1e"
CANARY = "CANARY-webhook-41d7"
LAST_GOOD = "CANARY-last-good-5e02"


@pytest.fixture
def bao(tmp_path: Path) -> Iterator[OpenBao]:
    server = OpenBao(tmp_path / "bao")
    try:
        yield server
    finally:
        server.server.stop()


def configure(project: ComposeProject, bao: OpenBao, *, poll: str, hook_port: int) -> None:
    config = Path(project.env["DSO_HOME"]) / "config.yaml"
    config.write_text(
        f"""\
version: 1
default_provider: local
providers:
  local:
    type: local
  vault:
    type: vault
    address: {bao.address}
    token: {bao.root_token}
agent:
  watch:
    polling_interval: {poll}
    debounce_window: 1s
  webhook:
    enabled: true
    listen: 127.0.0.1:{hook_port}
    token: {TOKEN}
"""
    )
    config.chmod(0o600)


def web_on_vault(project: ComposeProject) -> str:
    write_scripts(project)
    project.write(
        "compose.yaml",
        "services:\n  web:"
        + WEB_SERVICE
        + "    environment:\n      MSG: dso://vault:app/msg#value\n",
    )
    project.dso("up", "-d")
    (web,) = replicas(project, "web")
    return web


def post(port: int, body: dict[str, object], token: str | None) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connection.request("POST", "/hooks/secret-changed", json.dumps(body), headers)
    answer = connection.getresponse()
    doc = json.loads(answer.read() or b"{}")
    connection.close()
    return answer.status, doc


def test_polling_notices_an_openbao_change(
    project: ComposeProject, agent: Callable[..., AgentProcess], bao: OpenBao
) -> None:
    port = free_port()
    configure(project, bao, poll="1s", hook_port=port)
    bao.write("app/msg", {"value": "v1"})
    web = web_on_vault(project)
    running = agent()
    running.start()
    running.wait_for("Secret backend connected: vault")

    bao.write("app/msg", {"value": "v2"})
    took = wait_until(lambda: serving(web) == "v2\n")
    print(f"OpenBao change -> serving with 1 s polling, 1 s debounce: {took:.2f}s")
    running.wait_for("Rotation complete: dso://vault:app/msg#value")
    assert running.stop() == 0


def test_the_webhook_triggers_a_check_and_a_forged_call_reads_nothing(
    project: ComposeProject, agent: Callable[..., AgentProcess], bao: OpenBao
) -> None:
    port = free_port()
    configure(project, bao, poll="1h", hook_port=port)
    bao.write("app/msg", {"value": "v1"})
    web = web_on_vault(project)
    running = agent()
    running.start(ready="Webhook listening on 127.0.0.1")
    running.wait_for("Secret backend connected: vault")
    bao.write("app/msg", {"value": CANARY})
    body = {"provider": "vault", "secret": "app/msg"}

    status, doc = post(port, body, token="wrong")
    assert status == 401 and "trace_id" not in doc
    status, _ = post(port, body, token=None)
    assert status == 401
    time.sleep(3)
    assert serving(web) == "v1\n"  # nothing was read, nothing rotated
    assert "webhook: check" not in running.since_start()

    status, doc = post(port, body, token=TOKEN)
    assert status == 202 and doc["accepted"] is True
    wait_until(lambda: serving(web) == f"{CANARY}\n")
    running.wait_for("Rotation complete: dso://vault:app/msg#value")
    log = running.since_start()
    assert TOKEN not in log and CANARY not in log
    assert running.stop() == 0


def test_a_provider_outage_is_logged_once_and_changes_roll_out_when_it_is_back(
    project: ComposeProject, agent: Callable[..., AgentProcess], bao: OpenBao
) -> None:
    """OpenBao sealed: checks fail (one WARNING, containers untouched); a change made before it
    came back is rolled out once it answers again."""
    port = free_port()
    configure(project, bao, poll="1h", hook_port=port)
    bao.write("app/msg", {"value": "v1"})
    web = web_on_vault(project)
    running = agent()
    running.start(ready="Webhook listening on 127.0.0.1")
    running.wait_for("Secret backend connected: vault")
    body = {"provider": "vault", "secret": "app/msg"}

    bao.write("app/msg", {"value": "v2"})
    bao.seal()
    for attempt in range(3):
        status, _ = post(port, {**body, "idempotency_key": f"sealed-{attempt}"}, token=TOKEN)
        assert status == 202
        time.sleep(1.5)
    running.wait_for("Provider connection lost, retrying...")
    assert running.since_start().count("Provider connection lost, retrying...") == 1
    assert serving(web) == "v1\n"  # untouched while the provider is down

    bao.unseal()
    attempt = 0

    def rolled_out() -> bool:
        nonlocal attempt
        attempt += 1  # the breaker may still be open for a moment: ask again
        post(port, {**body, "idempotency_key": f"back-{attempt}"}, token=TOKEN)
        time.sleep(0.5)
        return serving(web) == "v2\n"

    wait_until(rolled_out, timeout=60)
    assert running.since_start().count("Secret backend connected: vault") == 2
    assert running.stop() == 0


def test_files_lost_during_an_outage_come_back_from_the_last_known_good_value(
    project: ComposeProject, agent: Callable[..., AgentProcess], bao: OpenBao
) -> None:
    """The agent rotated to a value (so it holds it); then OpenBao is sealed, the tmpfs files
    vanish and the container dies of it: the agent writes them back from its cache."""
    port = free_port()
    configure(project, bao, poll="1s", hook_port=port)
    bao.write("app/tok", {"value": "t1"})
    write_scripts(project)
    project.write(
        "compose.yaml",
        "services:\n  api:"
        + WEB_SERVICE
        + "    restart: unless-stopped\n"
        + "    environment:\n      TOKEN_FILE: dsofile://vault:app/tok#value\n",
    )
    project.dso("up", "-d")
    (api,) = replicas(project, "api")
    running = agent()
    running.start()
    bao.write("app/tok", {"value": LAST_GOOD})
    wait_until(lambda: exec_in(api, "cat", "/run/secrets/dso/TOKEN_FILE") == LAST_GOOD)

    bao.seal()
    running.wait_for("Provider connection lost, retrying...")
    shutil.rmtree(project.secrets_base)
    # Without its files the container cannot start; the agent reacts to it stopping (and may
    # even have the files back before Docker tries to start it again).
    docker("restart", "-t", "1", api)

    wait_until(lambda: inspect(api)["State"]["Running"], timeout=45)
    assert exec_in(api, "cat", "/run/secrets/dso/TOKEN_FILE") == LAST_GOOD
    log = running.since_start()
    assert "serving the last known good version of dsofile://vault:app/tok#value" in log
    # (A distinctive value: "t2" also occurs in the random names, "dsotest23b5…".)
    assert LAST_GOOD not in log
    bao.unseal()
    assert running.stop() == 0


def test_polling_notices_a_secrets_manager_change_on_moto(
    project: ComposeProject, agent: Callable[..., AgentProcess], tmp_path: Path
) -> None:
    moto = MotoServer(tmp_path / "moto")
    try:
        config = Path(project.env["DSO_HOME"]) / "config.yaml"
        config.write_text(
            f"""\
version: 1
default_provider: local
providers:
  local:
    type: local
  aws:
    type: aws
    region: {MotoServer.REGION}
    endpoint_url: {moto.endpoint}
    access_key_id: testing
    secret_access_key: testing
agent:
  watch:
    polling_interval: 1s
    debounce_window: 1s
"""
        )
        config.chmod(0o600)
        sm = moto.client()
        sm.create_secret(Name="app/msg", SecretString="m1")
        write_scripts(project)
        project.write(
            "compose.yaml",
            "services:\n  web:" + WEB_SERVICE + "    environment:\n      MSG: dso://aws:app/msg\n",
        )
        project.dso("up", "-d")
        (web,) = replicas(project, "web")
        running = agent()
        running.start()
        running.wait_for("Secret backend connected: aws")

        sm.put_secret_value(SecretId="app/msg", SecretString="m2")
        took = wait_until(lambda: serving(web) == "m2\n")
        print(f"moto change -> serving with 1 s polling, 1 s debounce: {took:.2f}s")
        running.wait_for("Rotation complete: dso://aws:app/msg")
        assert running.stop() == 0
    finally:
        moto.stop()
