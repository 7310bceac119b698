"""The agent's socket API under a realistic load: 1,000 managed containers, 10,000 rotations.

What it builds (all of it removed at the end, unless ``--keep``):

- a throwaway dso home: the local provider, 20 secrets ``bench/s0`` … ``bench/s19``;
- 1,000 **real containers** made with ``docker create`` (busybox, never started: the agent's
  ``scan_managed`` lists containers running or not), carrying the labels ``docker dso up``
  writes (``dso.refs``, ``dso.versions`` at the provider's current versions, the home's
  ``dso.rotation.owner``, compose project and service): 250 services of 4 replicas;
- 10,000 finished rotations written through ``Journal.save`` (the last 6 days, mostly
  ``completed``, some ``rolled_back``);
- a real ``dso agent`` on it (debounce 1 h: nothing it might find is rotated during the runs).

Figures (goals from issue 11):

- ``status`` through the socket, as ``docker dso status`` asks it (``AgentClient.call``: a
  connection, one JSON line each way, the answer parsed): median and p95 of 50. Goal ≤ 50 ms;
- ``docker dso status --json`` as a whole command (the docker CLI, its plugin metadata call,
  the dso process): median of 10. Goal ≤ 150 ms. ``dso status --json`` alone for comparison;
- ``health`` round trip: median and p95 of 200, a new connection each, in both dialects.
  Goal ≤ 2 ms;
- the agent's RSS (``VmRSS`` of /proc/PID/status) with those containers, after the runs
  (``VmHWM``, its peak, beside it), and once started. Goal ≤ 60 MB. ``--breakdown`` starts
  three more agents to tell what it is made of: only the containers, only the records, neither.

    .venv/bin/python bench/agent_api.py [--containers 1000] [--rotations 10000] [--keep]
                                        [--breakdown]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
IMAGE = "dso-test/busybox:1"
SECRETS = 20
REPLICAS = 4
CONFIG = """\
version: 1
default_provider: local
providers:
  local:
    type: local
agent:
  watch:
    polling_interval: 1h
    debounce_window: 1h
"""
STEPS = ["plan", "create_new", "deliver_files", "start_new", "health_gate", "attach_aliases"]


class Bench:
    def __init__(self, containers: int, rotations: int) -> None:
        self.containers = containers
        self.rotations = rotations
        self.root = Path(tempfile.mkdtemp(prefix="dso-bench-api-"))
        self.home = self.root / "home"
        self.project = f"dsobenchapi{secrets.token_hex(3)}"
        self.token = secrets.token_hex(6)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DSO_", "XDG_RUNTIME"))},
            "DSO_HOME": str(self.home),
            "DSO_NO_AGENT": "1",
        }
        self.agent: subprocess.Popen[bytes] | None = None
        self.timings: dict[str, float] = {}
        self.first_check = ""
        self.kept = 0

    @property
    def sock(self) -> Path:
        return self.home / "agent.sock"

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

    # -- setup ----------------------------------------------------------------------------

    def setup(self) -> None:
        self.dso("init")
        (self.home / "config.yaml").write_text(CONFIG)
        (self.home / "config.yaml").chmod(0o600)
        for n in range(SECRETS):
            self.dso("secret", "set", f"bench/s{n}", stdin=f"value-{n}".encode())
        self.timings["containers"] = timed(self.create_containers)
        self.timings["journal"] = timed(self.write_journal)

    def owner(self) -> str:
        from kernel.rotation.journal import Journal

        return Journal(self.home / "state").owner

    def create_containers(self) -> None:
        import docker

        client = docker.from_env(timeout=120)
        owner = self.owner()

        def create(n: int) -> None:
            service, replica = f"svc{n // REPLICAS}", n % REPLICAS + 1
            refs = {"DB_PASSWORD": f"dso://bench/s{n % SECRETS}"}
            refs["API_KEY"] = f"dso://bench/s{(n + 7) % SECRETS}"
            labels = {
                "dso.refs": json.dumps(refs),
                "dso.versions": json.dumps(dict.fromkeys(refs, "local:1")),
                "dso.rotation.owner": owner,
                "com.docker.compose.project": self.project,
                "com.docker.compose.service": service,
                "com.docker.compose.container-number": str(replica),
                "com.docker.compose.oneoff": "False",
                "dso.bench": self.token,
            }
            client.api.create_container(
                IMAGE,
                ["sleep", "3600"],
                name=f"{self.project}-{service}-{replica}",
                labels=labels,
            )

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(create, range(self.containers)))
        client.close()

    def write_journal(self) -> None:
        from kernel.rotation.journal import Journal, RotationEntry

        journal = Journal(self.home / "state")
        now = time.time()
        services = max(1, self.containers // REPLICAS)
        for n in range(self.rotations):
            at = now - 6 * 86400 + n * (6 * 86400 / self.rotations)
            service = f"svc{n % services}"
            name = f"{self.project}-{service}-1"
            status = "rolled_back" if n % 50 == 0 else "completed"
            doc: dict[str, Any] = {
                "id": f"{n:012x}",
                "trace_id": f"{n:032x}",
                "target": service,
                "strategy": "rolling",
                "strategy_reason": "auto: no fixed host ports",
                "status": status,
                "step": STEPS[-1],
                "steps": [{"step": s, "at": at + i} for i, s in enumerate(STEPS)],
                "old_id": "a" * 64,
                "old_name": name,
                "new_id": "b" * 64,
                "new_name": f"{name}_dso_new_{n:08x}",
                "lock_key": f"service-{self.project}.{service}",
                "references": {"DB_PASSWORD": f"dso://bench/s{n % SECRETS}"},
                "versions": {"DB_PASSWORD": {"from": "local:1", "to": "local:2"}},
                "started_at": at,
                "updated_at": at + 6,
                "finished_at": at + 6,
                "error": "health gate failed" if status == "rolled_back" else None,
            }
            journal.save(RotationEntry.from_dict(doc))
        self.kept = len(journal.summaries())

    def start_agent(self) -> None:
        log = (self.root / "agent.log").open("ab")
        started = time.monotonic()
        self.agent = subprocess.Popen(
            [BIN / "dso", "--log-level", os.environ.get("BENCH_LOG_LEVEL", "info"), "agent"],
            cwd=self.root,
            env=self.env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        from kernel.agent.api.client import AgentClient
        from kernel.errors import DSOError

        client = AgentClient(self.sock)
        while True:
            assert self.agent.poll() is None, self.log_tail()
            assert time.monotonic() - started < 120, "the agent did not start:\n" + self.log_tail()
            try:
                if client.call("health")["live"]:
                    break
            except DSOError:
                pass
            time.sleep(0.05)
        self.timings["agent start"] = time.monotonic() - started
        # the first check must find every container up to date (nothing to rotate)
        check = self.first_check_event()
        assert check["moved"] == 0, f"the containers' versions are not current: {check}"
        self.first_check = f"{check['secrets']} secrets, {check['moved']} moved"

    def first_check_event(self) -> dict[str, Any]:
        """The agent's first ``check`` event (its event stream keeps the last ones)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(120)
            sock.connect(str(self.sock))
            sock.sendall(b'{"action": "events", "history": true, "types": ["check"]}\n')
            with sock.makefile("rb") as reader:
                assert json.loads(reader.readline())["ok"]
                event: dict[str, Any] = json.loads(reader.readline())
        return event

    def log_tail(self) -> str:
        return (self.root / "agent.log").read_text(errors="replace")[-3000:]

    def cleanup(self, keep: bool) -> None:
        if self.agent is not None:
            self.agent.send_signal(signal.SIGTERM)
            try:
                self.agent.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()
        if keep:
            print(f"kept: {self.root} and the containers labelled dso.bench={self.token}")
            return
        import docker

        client = docker.from_env(timeout=120)
        made = client.api.containers(all=True, filters={"label": f"dso.bench={self.token}"})
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda c: client.api.remove_container(c["Id"], force=True), made))
        client.close()
        shutil.rmtree(self.root, ignore_errors=True)


# -- measuring ----------------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def samples_ms(action: Callable[[], object], count: int) -> list[float]:
    action()  # warm
    return [timed(action) * 1000 for _ in range(count)]


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def http_health(path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: health\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]


def vm(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def row(name: str, result: str, goal: str, ok: bool | None) -> None:
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    print(f"  {name:40} {result:32} {goal:10} {verdict}")


def measure(bench: Bench) -> None:
    from kernel.agent.api.client import AgentClient

    assert bench.agent is not None
    pid = bench.agent.pid
    idle_rss = vm(pid, "VmRSS")
    client = AgentClient(bench.sock, timeout=30)
    doc = client.call("status")
    size = len(json.dumps(doc))
    managed = len(doc["containers"]) if isinstance(doc.get("containers"), list) else "?"
    print(
        f"  status document: {size / 1024:.0f} kB; containers listed: {managed}; "
        f"rotation records in the journal: {bench.kept}"
    )
    print(
        f"  setup: {bench.containers} containers {bench.timings['containers']:.1f} s, "
        f"{bench.rotations} journal entries {bench.timings['journal']:.1f} s, agent start "
        f"{bench.timings['agent start']:.1f} s; its first check: {bench.first_check}"
    )
    print()
    row("figure", "result", "goal", None)

    status = samples_ms(lambda: client.call("status"), 50)
    median = statistics.median(status)
    row(
        "status via the socket (50)",
        f"median {median:.1f} ms, p95 {p95(status):.1f} ms",
        "≤ 50 ms",
        median <= 50,
    )

    for label, argv in (
        ("docker dso status --json (10)", ["docker", "dso", "status", "--json"]),
        ("dso status --json (10)", [str(BIN / "dso"), "status", "--json"]),
        ("docker dso version (10: CLI start alone)", ["docker", "dso", "version"]),
    ):
        probe = subprocess.run(argv, env=bench.env, capture_output=True, cwd=bench.root)
        if probe.returncode != 0:
            error = probe.stderr.decode(errors="replace").strip().splitlines()
            row(label, f"fails: {error[-1][:60] if error else probe.returncode}", "≤ 150 ms", None)
            continue

        def command(argv: list[str] = argv) -> None:
            subprocess.run(argv, env=bench.env, capture_output=True, cwd=bench.root, check=True)

        runs = samples_ms(command, 10)
        median = statistics.median(runs)
        if argv[-1] == "--json" and argv[0] == "docker":
            row(label, f"median {median:.0f} ms (min {min(runs):.0f})", "≤ 150 ms", median <= 150)
        else:
            row(label, f"median {median:.0f} ms (min {min(runs):.0f})", "(none)", None)

    health = samples_ms(lambda: client.call("health"), 200)
    median = statistics.median(health)
    row(
        "health via the socket, JSON lines (200)",
        f"median {median:.2f} ms, p95 {p95(health):.2f} ms",
        "≤ 2 ms",
        median <= 2,
    )
    over_http = samples_ms(lambda: http_health(bench.sock), 200)
    median = statistics.median(over_http)
    row(
        "health via the socket, HTTP (200)",
        f"median {median:.2f} ms, p95 {p95(over_http):.2f} ms",
        "≤ 2 ms",
        median <= 2,
    )

    rss, peak = vm(pid, "VmRSS"), vm(pid, "VmHWM")
    row(
        "agent RSS (VmRSS) after the runs",
        f"{rss:.1f} MB (peak VmHWM {peak:.1f} MB)",
        "≤ 60 MB",
        rss <= 60,
    )
    row("agent RSS (VmRSS) once started", f"{idle_rss:.1f} MB", "", None)


def breakdown(containers: int, rotations: int) -> None:
    """The agent's RSS once started with only the containers, only the records, neither."""
    print()
    print("  what the RSS is made of (a new home and agent each, RSS once started):")
    for n, r in ((containers, 0), (0, rotations), (0, 0)):
        bench = Bench(n, r)
        try:
            bench.setup()
            bench.start_agent()
            assert bench.agent is not None
            rss, peak = vm(bench.agent.pid, "VmRSS"), vm(bench.agent.pid, "VmHWM")
            print(f"    {n:5} containers, {r:5} records: {rss:6.1f} MB (peak {peak:.1f} MB)")
        finally:
            bench.cleanup(False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--containers", type=int, default=1000, help="managed containers")
    parser.add_argument("--rotations", type=int, default=10000, help="finished rotations kept")
    parser.add_argument("--keep", action="store_true", help="keep the home and the containers")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also the RSS with only the containers, only the records, neither",
    )
    args = parser.parse_args()

    bench = Bench(args.containers, args.rotations)
    print(
        f"agent API: {args.containers} managed containers (real: docker create, not started, "
        f"dso labels) and {args.rotations} rotation records (Journal.save)"
    )
    try:
        bench.setup()
        bench.start_agent()
        measure(bench)
    finally:
        bench.cleanup(args.keep)
    if args.breakdown:
        breakdown(args.containers, args.rotations)


if __name__ == "__main__":
    main()
