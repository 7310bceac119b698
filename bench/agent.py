"""The agent's figures: change → new container serving, idle footprint, batched checks, soak.

A throwaway dso home and compose project (a busybox httpd serving ``$MSG``, ``dso://bench/msg``;
image HEALTHCHECK interval 30 s) and a real ``dso agent`` on it. Cases:

- ``latency``: ``secret set`` → the container serves the new value, noticed by the local
  provider's ``watch`` (inotify; polling set to 1 h). Goal: debounce + ≤ 1.5 s;
- ``idle``: the agent's RSS and CPU over ``--idle`` seconds with nothing changing, providers
  (its child processes) counted apart. Goals: ≤ 45 MB, ≤ 0.5 % CPU;
- ``calls``: ``versions`` calls per check with 200 managed containers over 20 unique secrets
  (the real checker and local provider process on synthetic container records). Goal: 1;
- ``soak``: RSS every 30 s while a secret changes every 5 s for ``--soak`` seconds. Goal: flat
  within 5 %.

    .venv/bin/python bench/agent.py [--debounce 1] [--rounds 5] [--idle 60] [--soak 600]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
SERVE = 'mkdir -p /www && echo \\"$$MSG\\" > /www/index.html && exec httpd -f -p 80 -h /www'
COMPOSE = (
    """\
services:
  web:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 1s
"""
    + f'    command: ["sh", "-c", "{SERVE}"]\n'
    + """\
    environment:
      MSG: dso://bench/msg
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/"]
      interval: 30s
"""
)
CONFIG = """\
version: 1
default_provider: local
providers:
  local:
    type: local
agent:
  watch:
    polling_interval: {poll}
    debounce_window: {debounce}
"""
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


class Bench:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dso-bench-agent-"))
        self.shm = Path(tempfile.mkdtemp(prefix="dso-bench-agent-", dir="/dev/shm"))
        self.project = f"dsobenchagent{secrets.token_hex(3)}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DSO_")},
            "DSO_HOME": str(self.root / "home"),
            "DSO_SECRETS_DIR": str(self.shm / "s"),
            "DSO_NO_AGENT": "1",
            "COMPOSE_PROJECT_NAME": self.project,
        }
        self.agent: subprocess.Popen[bytes] | None = None
        self.version = 0

    def dso(self, *args: str, stdin: bytes | None = None) -> str:
        done = subprocess.run(
            [BIN / "dso", *args],
            input=stdin,
            cwd=self.root,
            env=self.env,
            capture_output=True,
            check=True,
        )
        return done.stdout.decode()

    def set_secret(self) -> str:
        self.version += 1
        value = f"v{self.version}"
        self.dso("secret", "set", "bench/msg", stdin=value.encode())
        return value

    def setup(self, poll: str, debounce: float) -> None:
        self.dso("init")
        self.configure(poll, debounce)
        (self.root / "compose.yaml").write_text(COMPOSE)
        self.set_secret()
        self.dso("up", "-d")

    def configure(self, poll: str, debounce: float) -> None:
        config = self.root / "home" / "config.yaml"
        config.write_text(CONFIG.format(poll=poll, debounce=f"{debounce}s"))
        config.chmod(0o600)

    def start_agent(self) -> None:
        log = (self.root / "agent.log").open("ab")
        self.agent = subprocess.Popen(
            [BIN / "dso", "--log-level", os.environ.get("BENCH_LOG_LEVEL", "info"), "agent"],
            cwd=self.root,
            env=self.env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 30
        while "Secret backend connected" not in (self.root / "agent.log").read_text():
            assert time.monotonic() < deadline, "the agent did not start"
            time.sleep(0.05)

    def stop_agent(self) -> None:
        if self.agent is not None:
            self.agent.send_signal(signal.SIGTERM)
            self.agent.wait(timeout=60)
            self.agent = None

    def serving(self) -> str:
        """What the container holding the service's name answers (not a rotation's copy)."""
        done = subprocess.run(
            ["docker", "exec", f"{self.project}-web-1", "wget", "-q", "-O-", "http://127.0.0.1/"],
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    def rotating(self) -> bool:
        done = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"name={self.project}-web-1_dso_"],
            capture_output=True,
            text=True,
            check=True,
        )
        return bool(done.stdout.strip())

    def latency(self) -> float:
        """Seconds from the start of `secret set` to the service serving the new value; then
        waits until the rotation has cleaned up, so rounds do not overlap."""
        started = time.monotonic()  # the vault file changes while `secret set` runs
        value = self.set_secret()
        while self.serving() != value:
            if time.monotonic() - started > 60:
                tail = (self.root / "agent.log").read_text()[-3000:]
                raise AssertionError(f"not rotated within 60 s; the agent's log ends:\n{tail}")
            time.sleep(0.02)
        took = time.monotonic() - started
        while self.rotating():
            time.sleep(0.05)
        time.sleep(0.5)
        return took

    def cleanup(self) -> None:
        self.stop_agent()
        subprocess.run(
            ["docker", "compose", "-p", self.project, "down", "-t", "1"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.shm, ignore_errors=True)


def rss_mb(pid: int) -> float:
    fields = Path(f"/proc/{pid}/statm").read_text().split()
    return int(fields[1]) * PAGE / 2**20


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as handle:
            found += [int(child) for child in handle.read().split()]
    return found


def case_latency(args: argparse.Namespace) -> None:
    for label, poll in (("watch (local provider, inotify)", "1h"),):
        bench = Bench()
        try:
            bench.setup(poll, args.debounce)
            bench.start_agent()
            samples = [bench.latency() for _ in range(args.rounds)]
            median = statistics.median(samples)
            print(
                f"  {label:34} median {median:5.2f} s  (min {min(samples):.2f}, max "
                f"{max(samples):.2f}; debounce {args.debounce:g} s → {median - args.debounce:.2f}"
                " s after it)"
            )
        finally:
            bench.cleanup()


def case_idle(args: argparse.Namespace) -> None:
    bench = Bench()
    try:
        bench.setup("5m", args.debounce)
        bench.start_agent()
        assert bench.agent is not None
        pid = bench.agent.pid
        time.sleep(5)
        cpu0, wall0 = cpu_seconds(pid), time.monotonic()
        time.sleep(args.idle)
        cpu = (cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0) * 100
        agent = rss_mb(pid)
        providers = sum(rss_mb(child) for child in children(pid))
        print(
            f"  idle {args.idle:g} s: agent RSS {agent:.1f} MB, CPU {cpu:.2f} %; providers "
            f"RSS {providers:.1f} MB ({len(children(pid))} processes)  (goal ≤ 45 MB, ≤ 0.5 %)"
        )
    finally:
        bench.cleanup()


def case_calls(args: argparse.Namespace) -> None:
    from kernel.agent.checker import VersionChecker
    from kernel.agent.managed import Managed
    from kernel.paths import local_layout
    from kernel.rotation.targets import Target
    from kernel.runtime import Runtime

    bench = Bench()
    try:
        bench.dso("init")
        for index in range(20):
            bench.dso("secret", "set", f"bench/s{index}", stdin=b"x")
        os.environ["DSO_HOME"] = bench.env["DSO_HOME"]
        runtime = Runtime.load(local_layout(Path(bench.env["DSO_HOME"])))
        managed = [
            Managed(
                id=f"{n:064x}",
                name=f"c{n}",
                target=Target(f"c{n}", f"container-c{n}", containers=(f"c{n}",)),
                references={"A": f"dso://bench/s{n % 20}", "B": f"dso://bench/s{(n + 7) % 20}"},
                versions={"A": "local:1", "B": "local:1"},
            )
            for n in range(200)
        ]
        with runtime:
            checker = VersionChecker(runtime)
            started = time.perf_counter()
            result = checker.check(managed)
            elapsed = time.perf_counter() - started
            stats = runtime.host.client("local").status()
        calls = stats["latency"].get("versions", {}).get("count")
        print(
            f"  200 containers, {result.secrets} unique secrets: versions calls per provider "
            f"{result.calls} (provider counted {calls}); check took {elapsed * 1000:.1f} ms; "
            f"{len(result.lagging)} lagging  (goal: 1 call per provider)"
        )
    finally:
        bench.cleanup()


def case_soak(args: argparse.Namespace) -> None:
    bench = Bench()
    try:
        bench.setup("5m", args.debounce)
        bench.start_agent()
        assert bench.agent is not None
        pid = bench.agent.pid
        samples = []
        started = time.monotonic()
        next_sample = started
        while time.monotonic() - started < args.soak:
            bench.set_secret()
            if time.monotonic() >= next_sample:
                samples.append(rss_mb(pid))
                next_sample += 30
            time.sleep(5)
        samples.append(rss_mb(pid))
        first, last = samples[0], samples[-1]
        later = samples[len(samples) // 3 :]
        print(
            f"  soak {args.soak:g} s, a change every 5 s: RSS {first:.1f} → {last:.1f} MB "
            f"(max {max(samples):.1f}); after the first third "
            f"{min(later):.1f} to {max(later):.1f} MB ({(max(later) / min(later) - 1) * 100:.1f} %)"
            "  (goal: flat within 5 %)"
        )
    finally:
        bench.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("cases", nargs="*", default=["latency", "idle", "calls"])
    parser.add_argument("--debounce", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--soak", type=float, default=600.0)
    args = parser.parse_args()
    for case in args.cases:
        print(f"{case}:")
        {"latency": case_latency, "idle": case_idle, "calls": case_calls, "soak": case_soak}[case](
            args
        )


if __name__ == "__main__":
    main()
