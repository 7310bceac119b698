"""Requests refused, unresolved or cut while rolling apps that are slow to listen.

For each app start delay (``--delays``, seconds until the app listens; its HEALTHCHECK passes
only then, with Docker's 30 s interval) and replica count (``--replicas``), ``--rounds`` rounds
rotate every replica once (rolling, through the engine) while a client in a container requests
``http://web/`` in a loop (``timeout 2 wget``, resolving the alias every time). Each failed
request is classified:

- ``cut``: timed out: in flight to an old container when it was disconnected (Docker drops the
  packets of a disconnected endpoint; docs/rotation.md, "In-flight requests");
- ``retired``: refused by an address a swap had already retired when the request started (the
  cut request's SYN retransmission reached the next copy that got the same address);
- ``refused``: refused by any other address: a client sent to a container that was not ready;
- ``unresolved``: no address for ``web``: nobody served.

The goal (issue 9): ``refused`` and ``unresolved`` are 0; ``cut + retired`` ≤ 1 per swap.
Needs Docker and the dso-test/busybox:1 image.

    .venv/bin/python bench/rolling_slow.py [--rounds 3] [--delays 0 2 5] [--replicas 1 3]
"""

from __future__ import annotations

import argparse
import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from kernel.config.model import RotationConfig
from kernel.containers.client import connect
from kernel.rotation import Journal, RotationEngine, TargetLocks
from kernel.rotation.model import ChangedReference, Changes
from kernel.secret_value import SecretValue

IMAGE = "dso-test/busybox:1"
SLOW_HTTPD = [
    "sh",
    "-c",
    'mkdir -p /www && echo "$MSG" > /www/index.html && sleep "$DELAY" '
    "&& exec httpd -f -p 80 -h /www",
]
HEALTH = {
    "test": ["CMD-SHELL", "wget -q -O- http://127.0.0.1/ >/dev/null"],
    "interval": 30 * 10**9,
    "timeout": 5 * 10**9,
}
CLIENT = r"""
mkdir -p /tmp; ok=0
while [ ! -f /tmp/stop ]; do
  if timeout 2 wget -q -O- http://web/ >/dev/null 2>/tmp/err; then ok=$((ok+1))
  else echo "rc=$? after $ok ok: $(cat /tmp/err)" >> /tmp/failures; fi
  echo "$ok" > /tmp/ok
done
exec sleep 600
"""


def fetch_for(value: str) -> Any:
    def fetch(view: Any) -> Changes:
        ref = ChangedReference("MSG", "dso://bench/msg", "env", None, f"local:{value}")
        return Changes(env={"MSG": SecretValue(value)}, references=(ref,))

    return fetch


def run_case(client: Any, delay: int, replicas: int, rounds: int) -> dict[str, int]:
    tag = secrets.token_hex(4)
    label = {"dso.bench": tag}
    network = client.networks.create(f"dsobench{tag}", labels=label)
    state = Path(tempfile.mkdtemp(prefix="dso-bench-slow-"))
    try:
        names = []
        for number in range(1, replicas + 1):
            name = f"dsobench{tag}-web-{number}"
            client.containers.run(
                IMAGE,
                SLOW_HTTPD,
                name=name,
                detach=True,
                init=True,
                labels=label,
                environment={"MSG": "v0", "DELAY": str(delay)},
                healthcheck=HEALTH,
                network=network.name,
                networking_config={
                    network.name: client.api.create_endpoint_config(aliases=["web"])
                },
            )
            names.append(name)
        for name in names:
            _wait(lambda name=name: _exec(client, name, "wget", "-q", "-O-", "http://127.0.0.1/"))
        watcher = client.containers.run(
            IMAGE,
            ["sh", "-c", CLIENT],
            name=f"dsobench{tag}-client",
            detach=True,
            init=True,
            labels=label,
            network=network.name,
        )
        _wait(lambda: int(_exec(client, watcher.name, "cat", "/tmp/ok") or 0) > 20)
        engine = RotationEngine(
            client,
            journal=Journal(state / "state"),
            locks=TargetLocks(state / "locks"),
            config=RotationConfig(strategy="rolling", timeout=delay + 30.0),
        )
        retired: dict[str, int] = {}  # address → requests served when the swap retiring it began
        swaps = 0
        for round_ in range(1, rounds + 1):
            for name in names:
                networks = client.api.inspect_container(name)["NetworkSettings"]["Networks"]
                served_now = int(_exec(client, watcher.name, "cat", "/tmp/ok") or 0)
                retired.setdefault(networks[network.name]["IPAddress"], served_now)
                outcome = engine.rotate(name, fetch_for(f"v{round_}"))
                assert outcome.status == "completed", outcome.error
                swaps += 1
        time.sleep(3)  # let a request cut by the last swap time out
        _exec(client, watcher.name, "touch", "/tmp/stop")
        _wait(lambda: _exec(client, watcher.name, "pidof", "sleep"))
        served = int(_exec(client, watcher.name, "cat", "/tmp/ok") or 0)
        failures = (_exec(client, watcher.name, "cat", "/tmp/failures") or "").splitlines()
        return {"swaps": swaps, "served": served, **classify(failures, retired)}
    finally:
        for container in client.containers.list(all=True, filters={"label": f"dso.bench={tag}"}):
            container.remove(force=True)
        network.remove()


def classify(lines: list[str], retired: dict[str, int]) -> dict[str, int]:
    counts = {"cut": 0, "retired": 0, "refused": 0, "unresolved": 0, "other": 0}
    for line in filter(None, (item.strip() for item in lines)):
        refused = re.search(r"after (\d+) ok: .*\(([0-9.]+)\): Connection refused", line)
        if line.startswith("rc=143"):
            counts["cut"] += 1
        elif refused:
            ok, address = int(refused.group(1)), refused.group(2)
            late = address in retired and ok >= retired[address]
            counts["retired" if late else "refused"] += 1
        elif "bad address" in line:
            counts["unresolved"] += 1
        else:
            counts["other"] += 1
    return counts


def _exec(client: Any, container: str, *command: str) -> str | None:
    result = client.containers.get(container).exec_run(list(command))
    return result.output.decode() if result.exit_code == 0 else None


def _wait(check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(check)
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--delays", type=int, nargs="+", default=[0, 2, 5])
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 3])
    args = parser.parse_args()
    client = connect()
    total: dict[str, int] = {}
    print(
        f"{'delay':>5} {'replicas':>8} {'swaps':>5} {'served':>7} "
        f"{'cut':>4} {'retired':>7} {'refused':>7} {'unresolved':>10} {'other':>5}"
    )
    for delay in args.delays:
        for replicas in args.replicas:
            row = run_case(client, delay, replicas, args.rounds)
            for key, value in row.items():
                total[key] = total.get(key, 0) + value
            print(
                f"{delay:>4}s {replicas:>8} {row['swaps']:>5} {row['served']:>7} "
                f"{row['cut']:>4} {row['retired']:>7} {row['refused']:>7} "
                f"{row['unresolved']:>10} {row['other']:>5}"
            )
    print(
        f"{'all':>5} {'':>8} {total['swaps']:>5} {total['served']:>7} {total['cut']:>4} "
        f"{total['retired']:>7} {total['refused']:>7} {total['unresolved']:>10} "
        f"{total['other']:>5}"
    )
    bad = total["refused"] + total["unresolved"] + total["other"]
    cut = total["cut"] + total["retired"]
    print(
        f"\ngoal: refused + unresolved = 0: {'ok' if bad == 0 else 'MISSED'} ({bad}); "
        f"cut ≤ 1 per swap: {'ok' if cut <= total['swaps'] else 'MISSED'} "
        f"({cut} in {total['swaps']} swaps)"
    )


if __name__ == "__main__":
    main()
