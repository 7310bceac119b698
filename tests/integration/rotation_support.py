"""Docker fixtures of the rotation tests: everything created is labelled and removed.

``scope`` labels every container, network and volume a test creates (and every container a
rotation clones from them: labels are copied) with ``dso.test=<random>``, names them
``dsotest<random>-…``, and removes exactly those in a ``finally``. ``engine`` is a
:class:`RotationEngine` on a private state directory; ``cli`` runs the real ``dso`` program with
a private ``DSO_HOME`` and an initialised local vault.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest

from kernel.config.model import RotationConfig
from kernel.containers.client import connect
from kernel.containers.drain import unavailable
from kernel.rotation.engine import RotationEngine
from kernel.rotation.journal import Journal
from kernel.rotation.locks import TargetLocks
from kernel.rotation.model import ChangedReference, Changes
from kernel.secret_value import SecretValue

IMAGE = "dso-test/busybox:1"
DSO = str(Path(sys.executable).parent / "dso")
LABEL = "dso.test"
#: A tiny web server: serves $MSG at / (httpd as a child of docker-init, so SIGTERM stops it).
HTTPD = [
    "sh",
    "-c",
    'mkdir -p /www && echo "$MSG" > /www/index.html && exec httpd -f -p 80 -h /www',
]
#: HEALTHCHECK with Docker's 30 s interval: only dso's fast probing makes rotations quick.
#: MSG=bad fails it; MSG=slow hangs it (for the timeout test).
HEALTH = {
    "test": [
        "CMD-SHELL",
        '[ "$MSG" != bad ] && { [ "$MSG" != slow ] || sleep 30; } && wget -q -O- http://127.0.0.1/',
    ],
    "interval": 30 * 10**9,
    "timeout": 10 * 10**9,
    "retries": 3,
}


@dataclass
class Scope:
    client: docker.DockerClient
    value: str
    prefix: str
    extra_volumes: list[str] = field(default_factory=list)

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    def labels(self, **extra: str) -> dict[str, str]:
        return {LABEL: self.value, **extra}

    def network(self, suffix: str, **kwargs: Any) -> str:
        name = self.name(suffix)
        self.client.networks.create(name, labels=self.labels(), **kwargs)
        return name

    def volume(self, suffix: str, **labels: str) -> str:
        name = self.name(suffix)
        self.client.volumes.create(name, labels=self.labels(**labels))
        return name

    def run(self, suffix: str, command: list[str] | None = None, **kwargs: Any) -> Any:
        labels = self.labels(**kwargs.pop("labels", {}))
        kwargs.setdefault("init", True)
        return self.client.containers.run(
            IMAGE, command, name=self.name(suffix), labels=labels, detach=True, **kwargs
        )

    def web(self, suffix: str, network: str, msg: str = "old", **kwargs: Any) -> Any:
        """The HTTP service under test, behind alias ``web`` on ``network``."""
        container = self.run(
            suffix,
            HTTPD,
            environment={"MSG": msg, **kwargs.pop("environment", {})},
            network=network,
            networking_config={network: self.client.api.create_endpoint_config(aliases=["web"])},
            healthcheck=HEALTH,
            **kwargs,
        )
        wait_for(lambda: self.exec(container.name, "wget", "-q", "-O-", "http://127.0.0.1/"))
        return container

    def ours(self) -> list[Any]:
        return self.client.containers.list(all=True, filters={"label": f"{LABEL}={self.value}"})

    def names(self) -> list[str]:
        return sorted(c.name for c in self.ours())

    def inspect(self, name: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.client.api.inspect_container(name)
        return doc

    def exec(self, container: str, *command: str) -> str | None:
        """stdout of ``command`` in ``container``, or None when it fails."""
        result = self.client.containers.get(container).exec_run(list(command))
        return result.output.decode() if result.exit_code == 0 else None

    def cleanup(self) -> None:
        for container in self.ours():
            container.remove(force=True, v=True)
        for network in self.client.networks.list(filters={"label": f"{LABEL}={self.value}"}):
            remove_network(network)
        for volume in self.client.volumes.list(filters={"label": f"{LABEL}={self.value}"}):
            volume.remove(force=True)
        for name in self.extra_volumes:
            with contextlib.suppress(docker.errors.NotFound):
                self.client.volumes.get(name).remove(force=True)


def remove_network(network: Any, attempts: int = 20) -> None:
    """Remove one of our networks. Docker 20.10 may still list an endpoint of a container just
    removed ("has active endpoints"): force those endpoints off (only ours are on it), retry."""
    for _ in range(attempts):
        try:
            network.remove()
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if "active endpoints" not in str(exc):
                raise
        network.reload()
        for endpoint in network.attrs.get("Containers") or {}:
            with contextlib.suppress(docker.errors.APIError):
                network.disconnect(endpoint, force=True)
        time.sleep(0.25)
    network.remove()


@pytest.fixture
def scope() -> Iterator[Scope]:
    client = connect()
    token = secrets.token_hex(5)
    created = Scope(client, f"rotation-{token}", f"dsotest{token}")
    try:
        yield created
    finally:
        created.cleanup()
        client.close()


@pytest.fixture
def engine_factory(tmp_path: Path, scope: Scope) -> Callable[..., RotationEngine]:
    def make(retries: int | None = None, **config: Any) -> RotationEngine:
        settings = {"strategy": "auto", "timeout": 10.0, "rollback_on_failure": True, **config}
        return RotationEngine(
            scope.client,
            journal=Journal(tmp_path / "state"),
            locks=TargetLocks(tmp_path / "locks"),
            config=RotationConfig(**settings),
            health_retries=retries,
        )

    return make


def env_changes(**values: str) -> Callable[[Any], Changes]:
    """A fetch that rolls out ``values`` as environment variables."""

    def fetch(view: Any) -> Changes:
        return Changes(
            env={k: SecretValue(v) for k, v in values.items()},
            references=tuple(
                ChangedReference(k, f"dso://test/{k.lower()}", "env", "local:1", "local:2")
                for k in values
            ),
        )

    return fetch


def wait_for(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(interval)


#: Requests ``http://web/`` in a loop, counting successes and failures into /tmp/counts
#: ("ok fail last-body"), one line per failure into /tmp/failures (what
#: :func:`assert_always_served` reads); stops on /tmp/stop.
LOOPING_CLIENT = r"""
mkdir -p /tmp; ok=0; fail=0; last=none
while [ ! -f /tmp/stop ]; do
  if body=$(timeout 2 wget -q -O- http://web/ 2>/tmp/err); then ok=$((ok+1)); last=$body
  else rc=$?; fail=$((fail+1)); echo "rc=$rc after $ok ok: $(cat /tmp/err)" >> /tmp/failures; fi
  echo "$ok $fail $last" > /tmp/counts.tmp && mv /tmp/counts.tmp /tmp/counts
done
exec sleep 600
"""

#: A looping client's request that hit its `timeout 2` (busybox `timeout` exits 143).
CUT_IN_FLIGHT = "rc=143 "


#: dso (run by these tests, as this user, on this host) drains old containers before they leave
#: their networks, so not even the request in flight at a swap may fail.
DRAINED = unavailable() is None


def assert_always_served(
    failures: str, swaps: int, retired_addresses: Mapping[str, int] | None = None
) -> None:
    """No request of a looping client found the service without a serving container; where dso
    drains old containers (:data:`DRAINED`: root, iptables, br_netfilter, as in CI), no request
    failed at all.

    Without the drain: ``failures`` holds one ``rc=<exit status> after <n> ok: <wget error>``
    line per failed request. A request in flight to the old container at the instant it is
    disconnected (so that DNS stops returning it) hangs until the client's timeout: Docker
    cannot drain the connections of a disconnected endpoint (docs/rotation.md, "In-flight
    requests"). That can cut at most the requests in flight at one instant per swap: one for
    this client. If Docker hands the freed address to the next replica's copy within TCP's first
    SYN retransmission (1 s), that same request is refused by the copy instead.
    ``retired_addresses`` maps each address a swap retired to the client's count of served
    requests when that swap started: a refusal from that address *after* that point is the cut
    (before it, the address belonged to a copy that was not ready, which is the bug this guards
    against). Any other failure (refused, bad address) means no container was serving.
    """
    lines = [line for line in failures.splitlines() if line.strip()]
    if DRAINED:  # dso drains each old container before it leaves (kernel/containers/drain.py)
        assert not lines, f"requests failed although dso drains old containers: {lines}"
        return
    retired = retired_addresses or {}

    def cut(line: str) -> bool:
        if line.startswith(CUT_IN_FLIGHT):
            return True
        refused = re.search(r"after (\d+) ok: .*\(([0-9.]+)\): Connection refused", line)
        if refused is None or refused.group(2) not in retired:
            return False
        return int(refused.group(1)) >= retired[refused.group(2)]

    unserved = [line for line in lines if not cut(line)]
    assert not unserved, f"requests found no serving container: {unserved}"
    assert len(lines) <= swaps, f"more requests cut than swaps ({swaps}): {lines}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cli:
    """The real ``dso`` program with a private home and vault."""

    env: dict[str, str]
    home: Path

    def run(
        self, *args: str, stdin: str | None = None, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DSO, *args],
            input=stdin,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def popen(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [DSO, *args],
            env={**self.env, **(extra_env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def set_secret(self, name: str, value: str) -> None:
        done = self.run("secret", "set", name, stdin=value)
        assert done.returncode == 0, done.stderr

    def journal(self) -> list[dict[str, Any]]:
        """Every journal entry as a dict, oldest first."""
        return [entry.to_dict() for entry in Journal(self.home / "state").entries()]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSO_")}
    env.pop("XDG_RUNTIME_DIR", None)
    home = tmp_path / "dso-home"
    env.update(DSO_HOME=str(home), HOME=str(tmp_path), DSO_NO_AGENT="1")
    created = Cli(env, home)
    done = created.run("init")
    assert done.returncode == 0, done.stderr
    return created


def referenced(var: str, ref: str, version: str = "local:1") -> dict[str, str]:
    """The labels compose injection puts on a container given ``ref`` as ``var``."""
    return {"dso.refs": json.dumps({var: ref}), "dso.versions": json.dumps({var: version})}
