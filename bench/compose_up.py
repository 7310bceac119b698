"""Time `docker dso up -d` adds over plain `docker compose up -d`: 5 services, 20 references.

Two projects with the same 5 busybox services: one plain (literal values), one with 20
references (2 dso:// + 2 dsofile:// per service) in a throwaway local vault. Each case runs
N times; medians and the difference are printed. `--force-recreate` measures a full start,
the no-op case an `up` with nothing to change (dso still reads, resolves and writes).
Needs Docker, Compose v2, the dso-test/busybox:1 image and `dso install` (scripts/demo).

    .venv/bin/python bench/compose_up.py [-n 5]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
IMAGE = "dso-test/busybox:1"
SERVICES = 5


def compose_file(with_refs: bool) -> str:
    lines = ["services:"]
    for index in range(SERVICES):
        lines += [
            f"  svc{index}:",
            f"    image: {IMAGE}",
            '    command: ["sleep", "3600"]',
            "    stop_grace_period: 1s",
            "    environment:",
        ]
        for key in range(4):
            kind = "dso" if key < 2 else "dsofile"
            value = f"{kind}://bench/s{index}_{key}" if with_refs else f"plain-{index}-{key}"
            lines.append(f"      VAR_{key}: {value}")
    return "\n".join(lines) + "\n"


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="dso-bench-"))
    shm = Path(tempfile.mkdtemp(prefix="dso-bench-", dir="/dev/shm"))
    tag = secrets.token_hex(3)
    env = {**os.environ, "DSO_HOME": str(root / "home"), "DSO_SECRETS_DIR": str(shm / "s")}
    env["DSO_NO_AGENT"] = "1"  # the agent is measured by bench/agent.py
    env.pop("DSO_CONFIG", None)
    projects = {"plain": (f"dsobenchplain{tag}", False), "dso": (f"dsobenchdso{tag}", True)}
    try:
        subprocess.run([BIN / "dso", "install"], check=True, capture_output=True, env=env)
        subprocess.run([BIN / "dso", "init"], check=True, capture_output=True, env=env)
        for index in range(SERVICES):
            for key in range(4):
                subprocess.run(
                    [BIN / "dso", "secret", "set", f"bench/s{index}_{key}"],
                    input=secrets.token_hex(16).encode(),
                    check=True,
                    capture_output=True,
                    env=env,
                )
        for name, (_project, refs) in projects.items():
            (root / name).mkdir()
            (root / name / "compose.yaml").write_text(compose_file(refs))
        commands = {
            "plain": ["docker", "compose", "-p", projects["plain"][0], "up", "-d"],
            "dso": ["docker", "dso", "up", "-p", projects["dso"][0], "-d"],
        }
        results: dict[tuple[str, str], float] = {}
        for mode, extra in (("recreate", ["--force-recreate"]), ("no-op", [])):
            for name, argv in commands.items():
                timed(argv, root / name, env)  # warm up; creates the containers
                samples = [timed([*argv, *extra], root / name, env) for _ in range(args.n)]
                results[name, mode] = statistics.median(samples)
        print(f"{SERVICES} services, {SERVICES * 4} references (dso project), median of {args.n}")
        print(f"{'case':12} {'compose up -d':>14} {'dso up -d':>10} {'added':>8}")
        for mode in ("recreate", "no-op"):
            plain, dso = results["plain", mode], results["dso", mode]
            print(f"{mode:12} {plain:11.0f} ms {dso:7.0f} ms {dso - plain:5.0f} ms")
    finally:
        for project, _ in projects.values():
            subprocess.run(
                ["docker", "compose", "-p", project, "down", "-t", "1"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)


if __name__ == "__main__":
    main()
