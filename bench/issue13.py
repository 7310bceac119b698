"""Issue 13's table in one run: each row's figure against its reference, the ratio, and the goal.

Every row is measured by the bench script that already measures it, run here as a child process
with ``--json`` (its usual human output streams to stderr, prefixed with its name, while it
runs); this script only turns the figures into rows:

========================================  ====================================================
row                                       measured by
========================================  ====================================================
rotate 10 replicas, 1 s health interval   rotation_parallel.py --parallel 4 --replicas 10
  (reference docker-rollout 9.5 s,          (drain on, 10s); goal ≤ 9.5 s with 0 failed
  6-12 failed: the issue's figure)
in-flight drain: failed requests          the same run against one with --drain-timeout 0s
                                            (the reference: no drain); goal 0 failed over 100
                                            swaps (needs root, iptables, br_netfilter)
docker dso rotate: fixed cost             cli_profile.py --no-profile: wall time minus the
                                            replica's phases; goal ≤ 400 ms (reference: the
                                            bare Docker calls of a swap, ~500 ms, the issue's)
docker dso up -d, nothing to change       cli_profile.py, against docker compose up -d of the
                                            same service in the same run; goal ≤ +150 ms
docker dso version / --help               cli_profile.py, against docker version in the same
                                            run; goals ≤ 80 ms / ≤ 100 ms
journal save, 1,000 / 10,000 kept         journal.py (an in-flight step), against one
                                            atomic_write of an entry in the same run (the
                                            issue: 3.3 ms); goal ≤ 5 ms, whatever is kept
frozen provider start, per provider       provider_bundles.py, handshake frozen / source;
                                            goal ≤ 1.00 (needs dist/plugins: ``make build``)
agent + providers resident                provider_idle.py: total PSS once providers without a
                                            watch idled out (all four configured: OpenBao,
                                            moto, the Azure double); goal ≤ 100 MB
local provider get                        provider_rpc.py: p50 of get while vault.enc is
                                            unchanged, against this run's bare msgpack loop
                                            (the issue: 0.065 ms); goal ≤ 0.1 ms
========================================  ====================================================

A child that fails, times out, or lacks what it needs makes its rows "not measured: <why>";
nothing is made up. ``--quick`` (the default) uses short settings (the whole run took 4-6
minutes on 2 busy CPUs; the drain row then counts 30 swaps, not 100, and says so); ``--full``
uses the issue's (100 swaps each way, more repeats; 11 minutes at load 9-18). Medians of few
runs on a shared machine are noisy: compare ratios, and rerun a row alone with ``--only``.

    .venv/bin/python bench/issue13.py [--quick | --full] [--only NAME ...] [--json] [--quiet]

Prints the table on stdout at the end (``--json``: one JSON document with the rows and every
child's figures instead, the table going to stderr). Needs what the children need: Docker with
Compose v2 and the dso-test/busybox:1 image (``make dev-env``), ``dso install`` (done by
cli_profile.py), root for the drain, ``make build`` for the frozen providers.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PLUGINS = ROOT / "dist" / "plugins"
PROVIDERS = ("local", "vault", "aws", "azure")

#: The issue's own figures, used where this run cannot measure the reference.
ROLLOUT_S = 9.5  # docker-rollout v0.13, 10 replicas, 1 s health interval; 6-12 failed
BARE_SWAP_MS = 500.0  # the bare Docker calls of one swap, per replica
ISSUE_ATOMIC_MS = 3.3
ISSUE_MSGPACK_MS = 0.065
VAULT_AGENT_MB = 134.0
DRAIN_SWAPS_GOAL = 100


@dataclass
class Row:
    name: str
    figure: str = ""
    reference: str = ""
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    note: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def missing(cls, name: str, goal: str, why: str) -> Row:
        return cls(name, figure=f"not measured: {why}", goal=goal)


@dataclass
class Job:
    """One child bench: its argv (quick, full), timeouts, and what turns its JSON into rows."""

    name: str
    script: str
    quick: list[str]
    full: list[str]
    timeout: tuple[float, float]
    rows: Callable[[dict[str, Any]], list[Row]]
    placeholders: list[tuple[str, str]]  # (row, goal) when it cannot run
    precheck: Callable[[], str | None] = lambda: None


@dataclass
class Outcome:
    document: dict[str, Any] | None
    why: str | None
    seconds: float


def run_child(job: Job, argv: list[str], timeout: float, quiet: bool) -> Outcome:
    """Runs one bench with ``--json``; its stderr is shown live (prefixed) and its tail kept."""
    command = [sys.executable, str(BENCH / job.script), *argv, "--json"]
    print(f"\n== {job.name}: {' '.join(command[1:])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own group: a timeout stops it and what it started
    )
    assert proc.stdout is not None and proc.stderr is not None
    tail: collections.deque[str] = collections.deque(maxlen=40)
    out: list[str] = []

    def tee(stream: Any) -> None:
        for line in stream:
            tail.append(line.rstrip("\n"))
            if not quiet:
                print(f"  [{job.name}] {line}", end="", file=sys.stderr, flush=True)

    readers = [
        threading.Thread(target=tee, args=(proc.stderr,), daemon=True),
        threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True),  # type: ignore[union-attr]
    ]
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGINT)  # its finally blocks clean containers up
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for reader in readers:
        reader.join(10)
    seconds = time.monotonic() - started
    if timed_out:
        return Outcome(None, f"timed out after {timeout:.0f} s", seconds)
    if proc.returncode != 0:
        last = next((line.strip() for line in reversed(tail) if line.strip()), "")
        return Outcome(None, f"{job.script} exit {proc.returncode}: {last[:160]}", seconds)
    try:
        document = json.loads("".join(out).strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return Outcome(None, f"{job.script} printed no JSON document", seconds)
    return Outcome(document, None, seconds)


# -- prechecks: a precise reason instead of a child's traceback ------------------------------------


def _docker_image(name: str) -> str | None:
    try:
        done = subprocess.run(
            ["docker", "image", "inspect", name], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker is not usable ({exc})"
    if done.returncode != 0:
        if "No such image" in done.stderr:
            return f"the image {name} is missing (`make dev-env` builds it)"
        return f"docker: {done.stderr.strip()[:120]}"
    return None


def needs_docker() -> str | None:
    return _docker_image("dso-test/busybox:1")


def needs_servers() -> str | None:
    bin_dir = Path(sys.executable).parent
    for program in ("bao", "moto_server"):
        if not (bin_dir / program).exists():
            return f"{bin_dir / program} is missing (`make dev-env` installs it)"
    if not (ROOT / "tests" / "fakes" / "azure_keyvault_double.py").is_file():
        return "tests/fakes/azure_keyvault_double.py is missing (a source checkout is needed)"
    return needs_docker()


def needs_bundles() -> str | None:
    built = [
        p for p in PROVIDERS if (PLUGINS / f"dso-provider-{p}" / f"dso-provider-{p}").is_file()
    ]
    if not built:
        return (
            f"no frozen provider bundle in {PLUGINS.relative_to(ROOT)} (`make build` builds them)"
        )
    return None


# -- rows from each child's document ---------------------------------------------------------------


def rotation_rows(on: dict[str, Any], off: dict[str, Any] | None, off_why: str) -> list[Row]:
    rows: list[Row] = []
    name = "rotate 10 replicas, 1 s health interval"
    goal = f"≤ {ROLLOUT_S} s, 0 failed"
    result = on["results"][0]
    failed = result["cut"] + result["other"]
    rows.append(
        Row(
            name,
            figure=f"{result['median_s']:.1f} s, {failed} failed",
            reference=f"docker-rollout {ROLLOUT_S} s, 6-12 failed (issue)",
            ratio=result["median_s"] / ROLLOUT_S,
            goal=goal,
            met=result["median_s"] <= ROLLOUT_S and failed == 0,
            note=(
                f"--parallel {result['parallel']}, {on['rounds']} rotation(s): "
                + " ".join(f"{t:.1f}" for t in result["times_s"])
                + f" s; drain {'on ' + on['drain_timeout'] if on['drain'] else 'off'}"
            ),
            values={"run": result},
        )
    )
    name = "in-flight drain: failed requests"
    goal = f"0 failed over {DRAIN_SWAPS_GOAL} swaps"
    if not on["drain"]:
        rows.append(Row.missing(name, goal, f"the drain is off here: {on['drain_unavailable']}"))
        return rows
    swaps = result["swaps"]
    reference = f"not measured: {off_why}"
    ratio = None
    if off is not None:
        ref = off["results"][0]
        ref_failed = ref["cut"] + ref["other"]
        reference = f"{ref_failed} failed / {ref['swaps']} swaps without it (0s)"
        ratio = failed / ref_failed if ref_failed else None
    short = swaps < DRAIN_SWAPS_GOAL
    rows.append(
        Row(
            name,
            figure=f"{failed} failed / {swaps} swaps (drain {on['drain_timeout']})",
            reference=reference,
            ratio=ratio,
            goal=goal,
            met=failed == 0,
            note=(
                f"cut {result['cut']}, other {result['other']}"
                + (f"; only {swaps} swaps (--full: {DRAIN_SWAPS_GOAL})" if short else "")
            ),
            values={"swaps": swaps, "failed": failed, "short": short},
        )
    )
    return rows


CLI_ROWS = {
    "rotate: fixed cost outside replicas": ("docker dso rotate: fixed cost", "≤ 400 ms"),
    "docker dso up -d, nothing to change": ("docker dso up -d, nothing to change", "≤ +150 ms"),
    "docker dso version": ("docker dso version through docker", "≤ 80 ms"),
    "docker dso --help, rotate --help": ("docker dso --help, rotate --help", "≤ 100 ms"),
}


def cli_rows(document: dict[str, Any]) -> list[Row]:
    rows = []
    for found in document.get("rows", []):
        if found["row"] not in CLI_ROWS:
            continue
        name, goal = CLI_ROWS[found["row"]]
        if found["variant"] != "source":
            name += f" ({found['variant']})"
        figure = found["median_ms"]
        if found["row"].startswith("rotate"):
            reference = f"bare swap ~{BARE_SWAP_MS:.0f} ms/replica (issue)"
            ratio = figure / BARE_SWAP_MS
        else:
            ref_name = "docker compose up -d" if found["added"] else "docker version"
            reference = f"{ref_name} {found['reference_median_ms']:.0f} ms"
            ratio = found["ratio"]
        sign = "+" if found["added"] else ""
        rows.append(
            Row(
                name,
                figure=f"{sign}{figure:.0f} ms",
                reference=reference,
                ratio=ratio,
                goal=goal,
                met=found["met"],
                note=f"median of {document['runs']}; best {sign}{found['min_ms']:.0f} ms",
                values=found,
            )
        )
    return rows


def journal_rows(document: dict[str, Any]) -> list[Row]:
    atomic = document["atomic_write_ms"]
    saves = {int(k): v["after"] for k, v in document["kept"].items()}
    rows = []
    for kept, figures in sorted(saves.items()):
        save = figures["save, in-flight step"]
        note = f"finishing save {figures['save, finishing']:.2f} ms"
        if kept != min(saves):
            base = saves[min(saves)]["save, in-flight step"]
            note += f"; {save / base:.2f}x the save with {min(saves):,} kept"
        rows.append(
            Row(
                f"journal save, {kept:,} finished kept",
                figure=f"{save:.2f} ms",
                reference=f"atomic write {atomic:.2f} ms (issue {ISSUE_ATOMIC_MS})",
                ratio=save / atomic,
                goal="≤ 5 ms",
                met=save <= 5.0,
                note=note,
                values={"kept": kept, **figures, "atomic_write_ms": atomic},
            )
        )
    return rows


def bundle_rows(document: dict[str, Any]) -> list[Row]:
    rows = []
    for name in PROVIDERS:
        found = document["providers"].get(name)
        row = f"frozen provider start: {name}"
        if found is None:
            continue
        if "frozen" not in found:
            why = f"no bundle in {PLUGINS.relative_to(ROOT)} (`make build` builds it)"
            rows.append(Row.missing(row, "frozen ≤ source", why))
            continue
        if "source" not in found:
            rows.append(Row.missing(row, "frozen ≤ source", "no source module to compare"))
            continue
        frozen, source = found["frozen"], found["source"]
        ratio = frozen["handshake_ms"] / source["handshake_ms"]
        note = f"handshake; median of {document['runs']}"
        if frozen["configured_ms"] and source["configured_ms"]:
            configured = frozen["configured_ms"] / source["configured_ms"]
            note += (
                f"; configured {frozen['configured_ms']:.0f} vs {source['configured_ms']:.0f}"
                f" ms ({configured:.2f}x)"
            )
        rows.append(
            Row(
                row,
                figure=f"{frozen['handshake_ms']:.0f} ms",
                reference=f"source {source['handshake_ms']:.0f} ms",
                ratio=ratio,
                goal="frozen ≤ source",
                met=ratio <= 1.0,
                note=note,
                values=found,
            )
        )
    return rows


def idle_rows(document: dict[str, Any]) -> list[Row]:
    resident, idled = document["rows"][0], document["rows"][-1]
    total = idled["total_pss"]
    return [
        Row(
            "agent + providers resident (all four)",
            figure=f"{total:.0f} MiB PSS",
            reference=f"Vault Agent ~{VAULT_AGENT_MB:.0f} MB (issue)",
            ratio=total / VAULT_AGENT_MB,
            goal=f"≤ {document['goal_mb']:.0f} MB",
            met=total <= document["goal_mb"],
            note=(
                f"idle_timeout {idled['idle_timeout']}, idled out:"
                f" {', '.join(idled['idled']) or 'none'}; all resident (0s)"
                f" {resident['total_pss']:.0f} MiB PSS / {resident['total_rss']:.0f} MiB RSS;"
                f" {document['mode']} providers"
            ),
            values=document,
        )
    ]


def rpc_rows(document: dict[str, Any]) -> list[Row]:
    local = document.get("local")
    name, goal = "local provider get (vault.enc unchanged)", "≤ 0.1 ms"
    if local is None:
        return [Row.missing(name, goal, "providers.local is not importable from source")]
    bare = document["ping"]["bare_msgpack"]["p50_ms"]
    get = local["get"]["p50_ms"]
    return [
        Row(
            name,
            figure=f"{get:.3f} ms p50",
            reference=f"bare msgpack {bare:.3f} ms (issue {ISSUE_MSGPACK_MS})",
            ratio=get / bare,
            goal=goal,
            met=get <= local["goal_ms"],
            note=(
                f"p95 {local['get']['p95_ms']:.3f} ms; versions {local['versions']['p50_ms']:.3f}"
                f" ms; ping same provider {local['ping']['p50_ms']:.3f} ms;"
                f" median of {document['repeat']}"
            ),
            values=local,
        )
    ]


ROTATION = ["--parallel", "4", "--replicas", "10"]
JOBS = [
    Job(
        "journal",
        "journal.py",
        ["-n", "5", "--sizes", "1000,10000", "--no-before"],
        ["-n", "5", "--sizes", "1000,10000"],
        (300, 1800),
        journal_rows,
        [("journal save, 1,000 / 10,000 kept", "≤ 5 ms")],
    ),
    Job(
        "provider_rpc",
        "provider_rpc.py",
        ["-n", "1000", "--pipelined", "5000", "--repeat", "3", "--starts", "2"],
        [],
        (300, 900),
        rpc_rows,
        [("local provider get (vault.enc unchanged)", "≤ 0.1 ms")],
    ),
    Job(
        "provider_bundles",
        "provider_bundles.py",
        ["-n", "5"],
        ["-n", "15"],
        (300, 900),
        bundle_rows,
        [("frozen provider start", "frozen ≤ source")],
        needs_bundles,
    ),
    Job(
        "cli_profile",
        "cli_profile.py",
        ["-n", "5", "--no-profile"],
        ["-n", "7", "--no-profile"],
        (400, 1200),
        cli_rows,
        [(name, goal) for name, goal in CLI_ROWS.values()],
        needs_docker,
    ),
    Job(
        "provider_idle",
        "provider_idle.py",
        [],
        ["--settle", "15"],
        (400, 900),
        idle_rows,
        [("agent + providers resident (all four)", "≤ 100 MB")],
        needs_servers,
    ),
    Job(
        "rotation",
        "rotation_parallel.py",
        [*ROTATION, "--rounds", "3", "--drain-timeout", "10s"],
        [*ROTATION, "--rounds", "10", "--drain-timeout", "10s"],
        (600, 2400),
        lambda doc: [],  # with rotation_nodrain, below
        [
            ("rotate 10 replicas, 1 s health interval", f"≤ {ROLLOUT_S} s, 0 failed"),
            ("in-flight drain: failed requests", f"0 failed over {DRAIN_SWAPS_GOAL} swaps"),
        ],
        needs_docker,
    ),
    Job(
        "rotation_nodrain",
        "rotation_parallel.py",
        [*ROTATION, "--rounds", "3", "--drain-timeout", "0s"],
        [*ROTATION, "--rounds", "10", "--drain-timeout", "0s"],
        (600, 2400),
        lambda doc: [],
        [],
        needs_docker,
    ),
]


#: The issue's order of the rows (by the start of their names).
ORDER = (
    "rotate 10",
    "in-flight",
    "docker dso rotate",
    "docker dso up",
    "docker dso version",
    "docker dso --help",
    "journal",
    "frozen",
    "agent",
    "local",
)


def issue_order(row: Row) -> int:
    return next((i for i, start in enumerate(ORDER) if row.name.startswith(start)), len(ORDER))


def format_table(rows: list[Row]) -> str:
    """The rows aligned; a row not measured says why across the figure columns."""
    header = ("row", "dso", "reference", "ratio", "goal", "met")
    cells: list[tuple[str, ...]] = [header]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        met = "-" if row.met is None else ("yes" if row.met else "NO")
        if row.met and row.values.get("short"):
            met = "yes*"
        if row.figure.startswith("not measured"):
            cells.append((row.name, f"{row.figure} (goal {row.goal})"))
        else:
            cells.append((row.name, row.figure, row.reference, ratio, row.goal, met))
    widths = [
        max(len(line[i]) for line in cells if len(line) == len(header) or i == 0)
        for i in range(len(header))
    ]
    lines = []
    for number, line in enumerate(cells):
        text = "  ".join(
            cell.rjust(width) if i == 3 else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=False))
        )
        lines.append(text.rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    notes = [f"  {row.name}: {row.note}" for row in rows if row.note]
    if any(row.met and row.values.get("short") for row in rows):
        notes.append(
            f"  * met on fewer swaps than the goal's {DRAIN_SWAPS_GOAL} (--full runs them)"
        )
    return "\n".join([*lines, *(["", "notes:", *notes] if notes else [])])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short settings (default)")
    mode.add_argument("--full", action="store_true", help="the issue's settings (10-30 min)")
    parser.add_argument("--only", nargs="+", choices=[j.name for j in JOBS], help="these benches")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--quiet", action="store_true", help="do not stream the benches' output")
    args = parser.parse_args()
    full = bool(args.full)
    jobs = [j for j in JOBS if not args.only or j.name in args.only]
    load_before = os.getloadavg()
    started = time.monotonic()
    print(
        f"issue 13, {'full' if full else 'quick'} run: {len(jobs)} benches, {os.cpu_count()} CPUs,"
        f" load {load_before[0]:.1f}",
        file=sys.stderr,
    )
    outcomes: dict[str, Outcome] = {}
    for job in jobs:
        why = job.precheck()
        if why is not None:
            print(f"\n== {job.name}: not run: {why}", file=sys.stderr)
            outcomes[job.name] = Outcome(None, why, 0.0)
            continue
        argv = job.full if full else job.quick
        outcomes[job.name] = run_child(job, argv, job.timeout[full], args.quiet)
        if outcomes[job.name].why:
            print(f"== {job.name}: not measured: {outcomes[job.name].why}", file=sys.stderr)

    rows: list[Row] = []
    for job in jobs:
        outcome = outcomes[job.name]
        if job.name == "rotation_nodrain":
            continue
        if outcome.document is not None:
            try:
                if job.name == "rotation":
                    off = outcomes.get("rotation_nodrain")
                    off_doc = off.document if off else None
                    off_why = (off.why if off else None) or "not run (--only)"
                    rows += rotation_rows(outcome.document, off_doc, off_why)
                else:
                    rows += job.rows(outcome.document)
                continue
            except (KeyError, IndexError, TypeError, ZeroDivisionError) as exc:
                outcome.why = f"{job.script}'s document lacks a figure ({exc!r})"
        rows += [Row.missing(name, goal, outcome.why or "?") for name, goal in job.placeholders]

    rows.sort(key=issue_order)  # stable: journal sizes and providers keep their order
    load_after = os.getloadavg()
    minutes = (time.monotonic() - started) / 60
    title = (
        f"issue 13: dso against the references, {'full' if full else 'quick'} run,"
        f" {minutes:.1f} min, load {load_before[0]:.1f} → {load_after[0]:.1f} on"
        f" {os.cpu_count()} CPUs (ratio = dso / reference)"
    )
    table = title + "\n\n" + format_table(rows)
    if args.json:
        print("\n" + table, file=sys.stderr)
        document = {
            "mode": "full" if full else "quick",
            "minutes": minutes,
            "load": [load_before[0], load_after[0]],
            "rows": [asdict(row) for row in rows],
            "benches": {
                name: {"seconds": o.seconds, "why": o.why, "document": o.document}
                for name, o in outcomes.items()
            },
        }
        print(json.dumps(document, indent=1, sort_keys=True))
    else:
        print("\n" + table)


if __name__ == "__main__":
    main()
