"""Where the time of ``docker dso status --json`` goes, command by command and import by import.

Issue 11's goal: ``docker dso status --json`` ≤ 150 ms as a whole command with an agent running.
docker runs two processes for it (``docker-dso docker-cli-plugin-metadata``, then ``docker-dso dso
status --json``), so the figure is docker's own start + two Python starts + dso's work. Printed:

- whole commands, median and min of ``--runs`` (interleaved, so a busy machine weighs on every
  row alike): the docker call, the plugin alone, ``dso`` alone, the metadata call, and the floors
  (``python -c pass``, ``docker --version``). With ``--baseline DIR`` (a source tree holding
  ``kernel/``, e.g. ``git archive HEAD kernel | tar -x -C DIR``) each row is also run on that
  tree (``PYTHONPATH``), for a before/after on the same machine at the same moment;
- inside ``dso status --json`` as :mod:`kernel.cli.quick` answers it, phase by phase in a fresh
  process (imports, the ``agent.socket`` record, the socket round trip, the JSON printing), and
  the top-level imports by cumulative time (``-X importtime``, which adds some of its own);
- the modules the metadata call and the status command import (counted; heavy ones named).

``status --json`` skips click and the configuration only while the record of
:mod:`kernel.config.agent_socket` matches the configuration file (written by a status run once
the file has stood unchanged for a few seconds); the profile waits for that, and says so.

The agent: ``--home DIR`` uses the one running on that dso home (``bench/agent_api.py --keep``
leaves a home of 1,000 containers; start ``dso agent`` on it); without it, a throwaway home with
an empty agent is made and removed.

    .venv/bin/python bench/cli_status_profile.py [--home DIR] [--runs 10] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
HEAVY = {
    "click",
    "cryptography",
    "docker",
    "h11",
    "msgpack",
    "pluggy",
    "prometheus_client",
    "requests",
    "rich",
    "yaml",
}


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSO_", "XDG_RUNTIME"))}
    env.pop("PYTHONPATH", None)
    return {**env, "DSO_HOME": str(home), "DSO_NO_AGENT": "1"}


@contextmanager
def throwaway_agent() -> Iterator[Path]:
    """A new dso home with ``dso agent`` running on it; both gone afterwards."""
    root = Path(tempfile.mkdtemp(prefix="dso-status-profile-"))
    home = root / "home"
    env = base_env(home)
    subprocess.run([BIN / "dso", "init"], env=env, capture_output=True, check=True, cwd=root)
    with (root / "agent.log").open("ab") as log:
        agent = subprocess.Popen([BIN / "dso", "agent"], env=env, cwd=root, stdout=log, stderr=log)
    try:
        from kernel.agent.api.client import AgentClient
        from kernel.errors import DSOError

        deadline = time.monotonic() + 60
        while True:
            assert agent.poll() is None, (root / "agent.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the agent did not start"
            try:
                if AgentClient(home / "agent.sock").call("health")["live"]:
                    break
            except DSOError:
                time.sleep(0.05)
        yield home
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        shutil.rmtree(root, ignore_errors=True)


def run_ms(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True)
    elapsed = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        error = done.stderr.decode(errors="replace").strip()
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {error[-500:]}")
    return elapsed


def commands(runs: int, env: dict[str, str], cwd: Path, baseline: Path | None) -> None:
    cases = {
        "docker dso status --json": ["docker", "dso", "status", "--json"],
        "docker-dso dso status --json (no docker)": [
            str(BIN / "docker-dso"),
            "dso",
            "status",
            "--json",
        ],
        "dso status --json": [str(BIN / "dso"), "status", "--json"],
        "dso --log-level warning status --json (click)": [
            str(BIN / "dso"),
            "--log-level",
            "warning",
            "status",
            "--json",
        ],
        "docker-dso docker-cli-plugin-metadata": [
            str(BIN / "docker-dso"),
            "docker-cli-plugin-metadata",
        ],
        "docker dso version": ["docker", "dso", "version"],
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "docker --version (docker's floor)": ["docker", "--version"],
    }
    trees = {"now": {**env, "PYTHONPATH": str(ROOT)}}
    if baseline is not None:
        trees["baseline"] = {**env, "PYTHONPATH": str(baseline)}
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    for argv in cases.values():
        for tree_env in trees.values():
            run_ms(argv, tree_env, cwd)  # warm (and byte-compile a fresh tree)
    for _ in range(runs):
        for name, argv in cases.items():
            for tree, tree_env in trees.items():
                samples[name, tree].append(run_ms(argv, tree_env, cwd))
    print(
        f"  {'command (median of ' + str(runs) + ', ms)':44} "
        + "".join(f"{tree:>20}" for tree in trees)
    )
    for name in cases:
        cells = []
        for tree in trees:
            values = samples[name, tree]
            cells.append(f"{statistics.median(values):9.0f} (min {min(values):3.0f})")
        print(f"  {name:44} " + "".join(f"{cell:>20}" for cell in cells))


_PHASES = r"""
import time
started = time.perf_counter()
import sys
laps = []
def lap(name, last=[started]):
    now = time.perf_counter()
    laps.append((name, (now - last[0]) * 1000))
    last[0] = now
from kernel.cli import main, quick
from kernel.agent.api.client import AgentClient
from kernel.config.agent_socket import recorded_socket
from kernel.cli.json_output import json_text
from kernel.paths import local_layout
lap("imports")
layout = local_layout()
known, configured = recorded_socket(None, layout.cache)
assert known, "no record of the configuration: status would load it (and use click)"
lap("agent.socket (record)")
doc = AgentClient(configured or layout.socket).call("status")
lap("socket round trip")
text = json_text(doc)
lap("JSON text")
sys.stdout.write(text + "\n")
sys.stdout.flush()
lap("write")
import json
print(json.dumps(laps), file=sys.stderr)
"""


def phases(runs: int, env: dict[str, str], cwd: Path) -> None:
    """The quick path's phases in a fresh process (interpreter start not included)."""
    found: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", _PHASES],
            env={**env, "PYTHONPATH": str(ROOT)},
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
        for name, ms in json.loads(done.stderr.strip().splitlines()[-1]):
            found[name].append(ms)
    print("  `dso status --json` phase by phase (fresh process, after the interpreter's start):")
    for name, values in found.items():
        print(f"    {name:40} {statistics.median(values):6.1f} ms (min {min(values):.1f})")


_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def imports(runs: int, env: dict[str, str], cwd: Path) -> None:
    """Top-level imports of ``dso status --json`` by cumulative µs (median over runs)."""
    totals: dict[str, list[int]] = defaultdict(list)
    code = "import sys; from kernel.cli.main import run; sys.exit(run(['status', '--json']))"
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", code],
            env={**env, "PYTHONPATH": str(ROOT)},
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
        for line in done.stderr.splitlines():
            match = _IMPORT_LINE.match(line)
            if match and match.group(3) == " ":  # depth 0: imported by the command itself
                totals[match.group(4)].append(int(match.group(2)))
    ranked = sorted(totals.items(), key=lambda item: -statistics.median(item[1]))
    whole = sum(statistics.median(v) for _, v in ranked) / 1000
    print(f"  imports of `dso status --json` (-X importtime, top level; {whole:.0f} ms in all):")
    for name, values in ranked[:14]:
        print(f"    {name:40} {statistics.median(values) / 1000:6.1f} ms")


def socket_and_output(home: Path) -> None:
    from kernel.agent.api.client import AgentClient

    client = AgentClient(home / "agent.sock", timeout=30)
    doc = client.call("status")

    def median_ms(action: object, count: int = 20) -> float:
        assert callable(action)
        values = []
        for _ in range(count):
            started = time.perf_counter()
            action()
            values.append((time.perf_counter() - started) * 1000)
        return statistics.median(values)

    size = len(json.dumps(doc)) / 1024
    print(f"  status document: {size:.0f} kB, {len(doc.get('containers') or [])} containers")
    round_trip = median_ms(lambda: client.call("status"))
    print(f"    socket round trip (AgentClient.call)     {round_trip:6.1f} ms")
    from kernel.cli.app import Application

    app = Application(prog="dso", config_path=None, log_level="warning")
    with open(os.devnull, "w") as sink:
        stdout, sys.stdout = sys.stdout, sink
        try:
            printing = median_ms(lambda: app.out_json(doc))
        finally:
            sys.stdout = stdout
    print(f"    printing it (Application.out_json)       {printing:6.1f} ms")


def loaded_modules(env: dict[str, str], cwd: Path) -> None:
    probe = (
        "import sys\n"
        "from kernel.cli import docker_plugin\n"
        "sys.argv = ['docker-dso', *sys.argv[1:]]\n"
        "try:\n    docker_plugin.main()\nexcept SystemExit:\n    pass\n"
        "loaded = sorted(sys.modules)\n"
        "import json\n"
        "print(json.dumps(loaded), file=sys.stderr)\n"
    )
    for label, args in (
        ("metadata call", ["docker-cli-plugin-metadata"]),
        ("docker-dso dso status --json", ["dso", "status", "--json"]),
    ):
        done = subprocess.run(
            [sys.executable, "-c", probe, *args],
            env={**env, "PYTHONPATH": str(ROOT)},
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
        modules = json.loads(done.stderr.strip().splitlines()[-1])
        heavy = sorted(HEAVY & {m.split(".")[0] for m in modules})
        kernel = sorted(m for m in modules if m.startswith(("kernel.", "providers.")))
        print(f"  {label}: {len(modules)} modules; heavy: {heavy or 'none'}")
        print(f"    kernel: {', '.join(kernel) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--home", type=Path, help="a dso home with its agent running")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--baseline", type=Path, help="a source tree to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dso-status-cwd-") as cwd_name:
        cwd = Path(cwd_name)
        if args.home is not None:
            profile(args.home.resolve(), args.runs, args.baseline, cwd)
        else:
            with throwaway_agent() as home:
                profile(home, args.runs, args.baseline, cwd)


def settle(home: Path) -> None:
    """Wait until the configuration may be recorded, then let a status run record it."""
    from kernel.config import agent_socket

    config = home / "config.yaml"
    if config.exists():
        wait = config.stat().st_ctime + agent_socket.SETTLE + 0.1 - time.time()
        if wait > 0:
            print(f"  (waiting {wait:.1f} s: the configuration changed moments ago)")
            time.sleep(wait)
    subprocess.run([BIN / "dso", "status", "--json"], env=base_env(home), capture_output=True)
    record = home / "cache" / agent_socket.RECORD_NAME
    state = "recorded" if record.exists() else "NOT recorded (status loads it every time)"
    print(f"  configuration {config if config.exists() else '(none)'}: {state}")


def profile(home: Path, runs: int, baseline: Path | None, cwd: Path) -> None:
    env = base_env(home)
    # As scripts/dev-env does: a tree run with PYTHONDONTWRITEBYTECODE=1 would compile each time.
    for tree in (ROOT, *([baseline] if baseline is not None else [])):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "kernel")], check=True)
    print(
        f"`docker dso status --json` on {home} ({os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.2f})"
    )
    settle(home)
    commands(runs, env, cwd, baseline)
    print()
    phases(runs, env, cwd)
    print()
    socket_and_output(home)
    print()
    imports(runs, env, cwd)
    print()
    loaded_modules(env, cwd)


if __name__ == "__main__":
    main()
