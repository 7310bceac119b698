"""Rotating 10 replicas of one compose service with ``--parallel N``: wall time, failed requests.

Issue 13's row "rotate 10 replicas of one service (1 s health interval)": dso one replica at a time
took 17.6 s with 0 failed requests; docker-rollout v0.13 took 9.5 s with 6-12 failed. The goal is
≤ docker-rollout's time with 0 failed. A throwaway project (own DSO_HOME, local provider, secrets
on /dev/shm) runs a busybox httpd service of ``--replicas`` replicas (HEALTHCHECK interval 1 s)
and a client container requesting ``http://web/`` in a loop (``timeout 2 wget``, resolving the
alias each time). For each N of ``--parallel``, ``--rounds`` times: a new secret value, then
``dso rotate web --parallel N`` timed end to end (the CLI, as a user runs it); the failed requests
during it are counted (``cut``: timed out in flight to a disconnected old container; ``other``:
refused or unresolved). Prints the median time, its ratio against 9.5 s, and the failures.

    .venv/bin/python bench/rotation_parallel.py [--parallel 1 2 4] [--replicas 10] [--rounds 1]
        [--drain-timeout 10s] [--json]

Issue 13's "drain in-flight requests too" (0 failed over 100 swaps): ``--parallel 4 --rounds 10``
is 100 swaps; ``--drain-timeout 0s`` turns dso's drain off (kernel/containers/drain.py) for the
comparison. The drain needs root, iptables and br_netfilter (the first line says whether it is on).
``--json``: the same output on stderr, and one JSON document of the figures on stdout
(bench/issue13.py reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchjson import json_stdout

DSO = str(Path(sys.executable).parent / "dso")
REFERENCE = 9.5  # docker-rollout v0.13, 10 replicas, 1 s health interval (issue 13)

COMPOSE = """services:
  web:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 2s
    scale: {replicas}
    command:
      - sh
      - -c
      - |
        mkdir -p /www/cgi-bin && echo "$$MSG" > /www/index.html
        printf '#!/bin/sh\\nusleep {request_us}\\n' > /www/cgi-bin/slow
        printf 'echo Content-Type: text/plain\\necho\\ncat /www/index.html\\n' >> /www/cgi-bin/slow
        chmod +x /www/cgi-bin/slow
        exec httpd -f -p 80 -h /www
    environment:
      MSG: dso://app/msg
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/"]
      interval: 1s
  client:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 1s
    command:
      - sh
      - -c
      - |
        until wget -q -O- http://web/ >/dev/null 2>&1; do usleep 100000; done
        while true; do
          if ! timeout 2 wget -q -O- http://web/{path} >/dev/null 2>/tmp/err; then
            echo "rc=$$? $$(cat /tmp/err)" >> /tmp/failures
          fi
        done
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--drain-timeout", default="10s", help="agent.rotation.drain_timeout")
    parser.add_argument(
        "--request-ms",
        type=int,
        default=0,
        help="each request takes this long (a CGI that waits): a request is nearly always in "
        "flight, as with a real app, so a swap without the drain has one to cut",
    )
    parser.add_argument("--json", action="store_true", help="figures as JSON on stdout")
    args = parser.parse_args()
    with json_stdout(args.json) as document:
        run(args, document)


def run(args: argparse.Namespace, document: dict[str, object]) -> None:

    name = "dsobench" + secrets.token_hex(4)
    tmp = Path(tempfile.mkdtemp(prefix="dso-bench-"))
    shm = Path("/dev/shm") / name
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSO_", "COMPOSE_"))}
    env.update(
        DSO_HOME=str(tmp / "home"),
        DSO_NO_AGENT="1",
        DSO_SECRETS_DIR=str(shm / "secrets"),
        COMPOSE_PROJECT_NAME=name,
    )
    work = tmp / "app"
    work.mkdir()
    path = "cgi-bin/slow" if args.request_ms else ""
    compose = COMPOSE.format(replicas=args.replicas, request_us=args.request_ms * 1000, path=path)
    (work / "compose.yaml").write_text(compose)

    phases: dict[int, dict[str, list[float]]] = {}

    def dso(*argv: str, stdin: str | None = None) -> float:
        started = time.perf_counter()
        done = subprocess.run(
            [DSO, *argv], cwd=work, env=env, input=stdin, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"dso {' '.join(argv)}: {done.stderr}")
        if "--json" in argv:
            mine = phases.setdefault(int(argv[argv.index("--parallel") + 1]), {})
            for rotation in json.loads(done.stdout)["rotations"]:
                for phase, seconds in (rotation.get("phases") or {}).items():
                    mine.setdefault(phase, []).append(seconds)
        return elapsed

    def client_failures() -> list[str]:
        done = subprocess.run(
            ["docker", "compose", "-p", name, "exec", "-T", "client", "cat", "/tmp/failures"],
            capture_output=True,
            text=True,
        )
        return [line for line in done.stdout.splitlines() if line.strip()]

    try:
        dso("init")
        config = tmp / "home" / "config.yaml"
        drain = f"agent:\n  rotation:\n    drain_timeout: {args.drain_timeout}\n"
        config.write_text(config.read_text() + drain)
        dso("secret", "set", "app/msg", stdin="v0")
        dso("up", "-d")
        time.sleep(3)
        from kernel.containers.drain import unavailable

        why = unavailable()
        drained = why is None and args.drain_timeout not in ("0", "0s")
        results: list[dict[str, object]] = []
        document.update(
            replicas=args.replicas,
            rounds=args.rounds,
            reference_s=REFERENCE,
            drain_timeout=args.drain_timeout,
            drain=drained,
            drain_unavailable=why,
            results=results,
        )
        print(
            f"{args.replicas} replicas, health interval 1 s, looping client; "
            f"reference docker-rollout {REFERENCE} s with 6-12 failed; "
            + (f"drain on ({args.drain_timeout})" if drained else f"drain off ({why or '0s'})")
        )
        print(f"{'parallel':>8} {'median s':>9} {'ratio':>6} {'cut':>4} {'other':>5}  times")
        version = 0
        for parallel in args.parallel:
            times, cut, other = [], 0, 0
            for _ in range(args.rounds):
                version += 1
                dso("secret", "set", "app/msg", stdin=f"v{version}")
                before = len(client_failures())
                times.append(dso("rotate", "web", "--parallel", str(parallel), "--json"))
                time.sleep(2.5)  # a request cut by the last swap times out after 2 s
                new = client_failures()[before:]
                cut += sum(1 for line in new if line.startswith("rc=143"))
                other += sum(1 for line in new if not line.startswith("rc=143"))
            median = statistics.median(times)
            results.append(
                {
                    "parallel": parallel,
                    "times_s": times,
                    "median_s": median,
                    "cut": cut,
                    "other": other,
                    "swaps": args.rounds * args.replicas,
                }
            )
            print(
                f"{parallel:>8} {median:>9.2f} {median / REFERENCE:>6.2f} {cut:>4} {other:>5}  "
                + " ".join(f"{t:.2f}" for t in times)
            )
        print("mean seconds per replica by phase:")
        for parallel, by_phase in phases.items():
            means = "  ".join(f"{k} {statistics.mean(v):.2f}" for k, v in by_phase.items())
            print(f"{parallel:>8}  {means}")
    finally:
        subprocess.run(
            ["docker", "compose", "-p", name, "down", "-v", "--remove-orphans", "--timeout", "1"],
            capture_output=True,
            cwd=work,
        )
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    main()
