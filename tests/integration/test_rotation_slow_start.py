"""Rolling rotations of apps that are slow to listen: no client is ever sent to a container
that is not ready (issue: the clone used to join the service's DNS alias at create time, so a
client resolving ``web`` during the 2 s an app took to listen was refused).

The app serves only after ``DELAY`` seconds; its HEALTHCHECK passes only once it serves (with
Docker's 30 s interval, so only dso's own probing makes the gate fast). A client loops on the
alias the whole time. Allowed: the one request per swap that is in flight to the old container
when it is disconnected (docs/rotation.md, "In-flight requests"), which may also show as a
refusal from that retired address once Docker gave it to the next copy. Never allowed: a request
refused by any other address, or unresolved — that means a client was sent where nothing served.
"""

from __future__ import annotations

import pytest

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

#: Serves $MSG at / after sleeping $DELAY seconds (not listening until then).
SLOW_HTTPD = [
    "sh",
    "-c",
    'mkdir -p /www && echo "$MSG" > /www/index.html && sleep "$DELAY" '
    "&& exec httpd -f -p 80 -h /www",
]
SLOW_HEALTH = {
    "test": ["CMD-SHELL", "wget -q -O- http://127.0.0.1/ >/dev/null"],
    "interval": 30 * 10**9,
    "timeout": 5 * 10**9,
    "retries": 3,
}
ROUNDS = 2


def counts(scope: Scope, client: str) -> tuple[int, int, str]:
    text = scope.exec(client, "cat", "/tmp/counts") or "0 0 none"
    ok, fail, last = text.split(maxsplit=2)
    return int(ok), int(fail), last.strip()


@pytest.mark.parametrize("replicas", [1, 3])
@pytest.mark.parametrize("delay", [0, 2, 5])
def test_slow_apps_never_get_traffic_before_they_are_ready(
    scope: Scope, engine_factory, delay: int, replicas: int
) -> None:
    network = scope.network("net")
    endpoint = scope.client.api.create_endpoint_config(aliases=["web"])
    names = []
    for number in range(1, replicas + 1):
        container = scope.run(
            f"web-{number}",
            SLOW_HTTPD,
            environment={"MSG": "v0", "DELAY": str(delay)},
            network=network,
            networking_config={network: endpoint},
            healthcheck=SLOW_HEALTH,
            restart_policy={"Name": "unless-stopped"},
        )
        names.append(container.name)
    for name in names:
        wait_for(lambda name=name: scope.exec(name, "wget", "-q", "-O-", "http://127.0.0.1/"))
    client = scope.run("client", ["sh", "-c", LOOPING_CLIENT], network=network)
    wait_for(lambda: counts(scope, client.name)[0] >= 20)
    engine = engine_factory(timeout=delay + 15.0)

    swaps = 0
    retired: dict[str, int] = {}  # address → requests served when the swap retiring it began
    for round_number in range(1, ROUNDS + 1):
        for name in names:
            old = scope.inspect(name)["NetworkSettings"]["Networks"][network]["IPAddress"]
            retired.setdefault(old, counts(scope, client.name)[0])
            outcome = engine.rotate(name, env_changes(MSG=f"v{round_number}"))
            assert outcome.status == "completed", outcome.error
            swaps += 1
    wait_for(lambda: counts(scope, client.name)[2] == f"v{ROUNDS}")
    served = counts(scope, client.name)[0]
    wait_for(lambda: counts(scope, client.name)[0] >= served + 20)
    scope.exec(client.name, "touch", "/tmp/stop")
    wait_for(lambda: scope.exec(client.name, "pidof", "sleep"))

    ok, fail, _ = counts(scope, client.name)
    print(f"delay {delay}s, {replicas} replicas: {swaps} swaps, {ok} served, {fail} cut")
    failures = scope.exec(client.name, "cat", "/tmp/failures") if fail else ""
    assert_always_served(failures or "", swaps, retired)
    for name in names:
        current = scope.inspect(name)
        # The new container has the alias (attached after its gate) and the old restart policy.
        assert "web" in current["NetworkSettings"]["Networks"][network]["Aliases"]
        assert current["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert f"MSG=v{ROUNDS}" in current["Config"]["Env"]
    assert sorted(scope.names()) == sorted([*names, client.name])
