"""Fixed cost per command (issue 13, item 2): the three rows as ratios, and where the time goes.

Rows (median of ``-n`` interleaved runs; each against its reference and the issue's goal):

- ``docker dso version`` through docker (the docker CLI, then ``docker-dso
  docker-cli-plugin-metadata``, then ``docker-dso dso version``) against ``docker version``;
  goal ≤ 80 ms; ``docker dso --help`` and ``docker dso rotate --help`` goal ≤ 100 ms;
- ``docker dso up -d`` with nothing to change (1 service, one dso:// and one dsofile://
  reference) against ``docker compose up -d`` of the same service with literal values; goal:
  ≤ 150 ms added;
- the fixed cost of one ``docker dso rotate SERVICE --force --json`` (1 replica): its wall time
  minus the replica's own phases as the rotation reports them (create, start, health gate, swap,
  stop…); goal ≤ 400 ms. Reference: the bare Docker calls of a swap, ~500 ms per replica.

Then, unless ``--no-profile``: the top imports (``-X importtime``, cumulative) of ``rotate
--help``, ``up -d`` and ``rotate``, and the top functions by cumulative time (cProfile, in one
process) of ``up -d`` and ``rotate``: where the remaining time goes.

``--frozen DIR`` also measures the frozen release (``DIR`` holds ``dso`` as built by ``python
build/build_release.py dist --no-deb``, e.g. ``dist/dso-0.1.0/dso``): docker finds it as
``docker-dso`` in the ``cli-plugins`` of a throwaway ``DOCKER_CONFIG`` (next to the compose
plugin docker would run), which is what operators run. ``--baseline DIR`` runs every row on
another source tree as well (``git archive REV kernel providers | tar -x -C DIR``; ``PYTHONPATH``).

Needs Docker, Compose v2, the dso-test/busybox:1 image and ``dso install`` (scripts/demo).

    .venv/bin/python bench/cli_profile.py [-n 7] [--frozen dist/dso-0.1.0/dso] [--baseline DIR]
        [--no-profile | --no-table] [--json]

``--json``: the same output on stderr, and the issue's rows as one JSON document on stdout
(bench/issue13.py reads it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pstats
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from benchjson import json_stdout

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
IMAGE = "dso-test/busybox:1"
SERVICE = """\
services:
  web:
    image: {image}
    command: ["sleep", "3600"]
    init: true
    stop_grace_period: 1s
    labels: {{dso.bench: "{tag}"}}
    environment:
      A: {a}
      B: {b}
"""


@dataclass
class Setup:
    """A throwaway dso home with two secrets, and two projects: ``dso`` and ``plain``."""

    root: Path
    tag: str
    env: dict[str, str]
    projects: dict[str, Path] = field(default_factory=dict)

    def name(self, kind: str) -> str:
        return f"dsoprof{kind}{self.tag}"


@contextlib.contextmanager
def setup() -> Iterator[Setup]:
    root = Path(tempfile.mkdtemp(prefix="dso-cli-profile-"))
    shm = Path(tempfile.mkdtemp(prefix="dso-cli-profile-", dir="/dev/shm"))
    tag = secrets.token_hex(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSO_")}
    env.pop("PYTHONPATH", None)
    env.update(DSO_HOME=str(root / "home"), DSO_SECRETS_DIR=str(shm / "s"), DSO_NO_AGENT="1")
    made = Setup(root, tag, env)
    try:
        run([BIN / "dso", "init"], env)
        for name in ("a", "b"):
            run([BIN / "dso", "secret", "set", f"bench/{name}"], env, stdin=secrets.token_hex(8))
        for kind, (a, b) in {
            "dso": ("dso://bench/a", "dsofile://bench/b"),
            "plain": ("plain-a", "plain-b"),
        }.items():
            directory = root / kind
            directory.mkdir()
            text = f"name: {made.name(kind)}\n" + SERVICE.format(image=IMAGE, tag=tag, a=a, b=b)
            (directory / "compose.yaml").write_text(text)
            made.projects[kind] = directory
        run(["docker", "compose", "up", "-d"], env, cwd=made.projects["plain"])
        run([BIN / "dso", "up", "-d"], env, cwd=made.projects["dso"])
        yield made
    finally:
        for kind in ("dso", "plain"):
            subprocess.run(
                ["docker", "compose", "-p", made.name(kind), "down", "-t", "0"],
                capture_output=True,
                check=False,
            )
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)


def run(
    argv: list[str | Path], env: dict[str, str], *, cwd: Path | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in argv], env=env, cwd=cwd, input=stdin, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))}: exit {done.returncode}\n{done.stderr}")
    return done


def wall_ms(argv: list[str | Path], env: dict[str, str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    run(argv, env, cwd=cwd)
    return (time.perf_counter() - start) * 1000


def rotate_fixed_ms(env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """``docker dso rotate web --force --json``: (wall ms, wall minus the replica's phases)."""
    start = time.perf_counter()
    done = run(["docker", "dso", "rotate", "web", "--force", "--json"], env, cwd=cwd)
    wall = (time.perf_counter() - start) * 1000
    doc = json.loads(done.stdout)
    phases = sum(sum(r["phases"].values()) for r in doc["rotations"]) * 1000
    return wall, wall - phases


def frozen_docker_config(frozen: Path, root: Path) -> Path:
    """A DOCKER_CONFIG whose cli-plugins holds the frozen dso as docker-dso, and compose."""
    from kernel.compose.plugin import compose_plugin

    config = root / "docker-frozen"
    plugins = config / "cli-plugins"
    plugins.mkdir(parents=True)
    (plugins / "docker-dso").symlink_to((frozen / "dso").resolve())
    compose = compose_plugin(os.environ)
    if compose is not None:
        (plugins / "docker-compose").symlink_to(compose)
    home_config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    if home_config.exists():
        shutil.copy(home_config, config / "config.json")
    return config


@dataclass
class Variant:
    label: str
    env: dict[str, str]


def measure(runs: int, made: Setup, variants: list[Variant]) -> list[dict[str, object]]:
    """Prints the figures and the issue's rows; returns the rows."""
    reference_cases: dict[str, Callable[[], float]] = {
        "docker version": lambda: wall_ms(["docker", "version"], made.env),
        "docker compose up -d (no-op)": lambda: wall_ms(
            ["docker", "compose", "up", "-d"], made.env, made.projects["plain"]
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in reference_cases}
    cases: dict[str, Callable[[], float]] = {}
    for variant in variants:
        env, dso_dir = variant.env, made.projects["dso"]
        cases |= {
            f"{variant.label}: docker dso version": lambda env=env: wall_ms(
                ["docker", "dso", "version"], env
            ),
            f"{variant.label}: docker dso --help": lambda env=env: wall_ms(
                ["docker", "dso", "--help"], env
            ),
            f"{variant.label}: docker dso rotate --help": lambda env=env: wall_ms(
                ["docker", "dso", "rotate", "--help"], env
            ),
            f"{variant.label}: docker dso up -d (no-op)": lambda env=env, d=dso_dir: wall_ms(
                ["docker", "dso", "up", "-d"], env, d
            ),
        }
    for name in cases:
        samples[name] = []
    rotate: dict[str, list[tuple[float, float]]] = {v.label: [] for v in variants}
    for variant in variants:  # warm-up: caches, page cache, the first provider start
        wall_ms(["docker", "dso", "version"], variant.env)
        rotate_fixed_ms(variant.env, made.projects["dso"])
    for _ in range(runs):
        for name, case in {**reference_cases, **cases}.items():
            samples[name].append(case())
        for variant in variants:
            rotate[variant.label].append(rotate_fixed_ms(variant.env, made.projects["dso"]))
    med = {name: statistics.median(values) for name, values in samples.items()}
    low = {name: min(values) for name, values in samples.items()}
    print(f"median and best of {runs} interleaved runs, ms\n")
    print(f"{'command':52} {'median':>8} {'min':>8}")
    for name in samples:
        print(f"{name:52} {med[name]:8.1f} {low[name]:8.1f}")
    for label, pairs in rotate.items():
        walls = [w for w, _ in pairs]
        fixed = [f for _, f in pairs]
        name = label + ": docker dso rotate web --force (1 replica)"
        print(f"{name:52} {statistics.median(walls):8.1f} {min(walls):8.1f}")
        name = label + ":   of which outside the replica"
        print(f"{name:52} {statistics.median(fixed):8.1f} {min(fixed):8.1f}")
    print(
        "\nthe issue's rows: median (min) against the reference's median (min); "
        "ratio of the medians"
    )
    print(f"{'row':36} {'variant':8} {'figure':>15}  {'reference':>21} {'ratio':>6}  goal")
    found: list[dict[str, object]] = []
    for variant in variants:
        label = variant.label
        for row, of, ref_name, ref_value, goal, added in _rows(label, med, low, rotate[label]):
            figure, best = of
            ref_med, ref_low = ref_value
            sign = "+" if added else ""
            ratio = (figure + (ref_med if added else 0)) / ref_med
            ok = "ok" if figure <= goal else "MISSED"
            found.append(
                {
                    "row": row,
                    "variant": label,
                    "median_ms": figure,
                    "min_ms": best,
                    "added": added,
                    "reference": ref_name,
                    "reference_median_ms": ref_med,
                    "reference_min_ms": ref_low,
                    "ratio": ratio,
                    "goal_ms": goal,
                    "met": figure <= goal,
                }
            )
            print(
                f"{row:36} {label:8} {sign}{figure:5.0f} ({sign}{best:4.0f}) ms  "
                f"{ref_name:9} {ref_med:4.0f} ({ref_low:4.0f}) {ratio:5.2f}x  "
                f"{'≤ ' + sign + str(goal) + ' ms':11} {ok}"
            )
    return found


Pair = tuple[float, float]


def _rows(
    label: str,
    med: dict[str, float],
    low: dict[str, float],
    rotate: list[tuple[float, float]],
) -> list[tuple[str, Pair, str, Pair, int, bool]]:
    """(row, (median, min), reference name, its (median, min), goal ms, figure is added time)."""

    def both(name: str) -> Pair:
        return med[name], low[name]

    docker = both("docker version")
    compose = both("docker compose up -d (no-op)")
    version = both(f"{label}: docker dso version")
    helps = max(both(f"{label}: docker dso --help"), both(f"{label}: docker dso rotate --help"))
    up = both(f"{label}: docker dso up -d (no-op)")
    fixed = [f for _, f in rotate]
    return [
        ("docker dso version", version, "docker", docker, 80, False),
        ("docker dso --help, rotate --help", helps, "docker", docker, 100, False),
        (
            "docker dso up -d, nothing to change",
            (up[0] - compose[0], up[1] - compose[1]),
            "compose",
            compose,
            150,
            True,
        ),
        (
            "rotate: fixed cost outside replicas",
            (statistics.median(fixed), min(fixed)),
            "bare swap",
            (500.0, 500.0),
            400,
            False,
        ),
    ]


def importtime(argv: list[str], env: dict[str, str], cwd: Path, top: int) -> None:
    """The top-level imports of ``dso ARGV`` by cumulative time (-X importtime; it inflates)."""
    code = "import sys; from kernel.cli.main import run; sys.exit(run(sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    total = 0
    for line in done.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue  # the header, or not an import line
        name = parts[2][1:]  # one space after the bar, then two per level of nesting
        if not name.startswith(" "):
            rows.append((int(parts[1]), name))
            total += int(parts[1])
    rows.sort(reverse=True)
    print(
        f"\n-X importtime, dso {' '.join(argv)}: {total / 1000:.0f} ms of imports in all "
        f"(inflated by the measuring); top {top}:"
    )
    for cumulative, name in rows[:top]:
        print(f"  {cumulative / 1000:7.1f} ms  {name}")


def profile(argv: list[str], env: dict[str, str], cwd: Path, top: int) -> None:
    """cProfile of ``dso ARGV`` run once in this process' child (fresh imports)."""
    code = (
        "import cProfile, pstats, sys, io, contextlib\n"
        "profile = cProfile.Profile(); profile.enable()\n"
        "from kernel.cli.main import run\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    run(sys.argv[2:])\n"
        "profile.disable()\n"
        "pstats.Stats(profile).dump_stats(sys.argv[1])\n"
    )
    stats_file = Path(tempfile.mkstemp(suffix=".prof")[1])
    try:
        subprocess.run(
            [sys.executable, "-c", code, str(stats_file), *argv],
            env=env,
            cwd=cwd,
            capture_output=True,
            check=False,
        )
        out = io.StringIO()
        stats = pstats.Stats(str(stats_file), stream=out)
        stats.sort_stats("cumulative").print_stats(
            r"kernel|subprocess|docker/api|requests/sessions", top
        )
    finally:
        stats_file.unlink(missing_ok=True)
    print(
        f"\ncProfile, dso {' '.join(argv)}: top {top} by cumulative time (kernel, subprocess, "
        "docker SDK)"
    )
    for line in out.getvalue().splitlines():
        if line.strip() and ("/" in line or "ncalls" in line or "function calls" in line):
            print(
                "  " + line.replace(str(ROOT) + "/", "").replace(str(Path(sys.base_prefix)), "<py>")
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=7, help="runs per case (default 7)")
    parser.add_argument("--frozen", type=Path, help="directory of the frozen dso program")
    parser.add_argument("--baseline", type=Path, help="another source tree to measure too")
    parser.add_argument("--no-profile", action="store_true", help="only the table")
    parser.add_argument("--no-table", action="store_true", help="only the profiles")
    parser.add_argument("--top", type=int, default=15, help="rows of each profile")
    parser.add_argument("--json", action="store_true", help="the rows as JSON on stdout")
    args = parser.parse_args()
    with json_stdout(args.json) as document:
        document["runs"] = args.n
        _main(args, document)


def _main(args: argparse.Namespace, document: dict[str, object]) -> None:
    subprocess.run([BIN / "dso", "install"], check=True, capture_output=True)
    with setup() as made:
        variants = [Variant("source", made.env)]
        if args.baseline:
            variants.append(Variant("baseline", {**made.env, "PYTHONPATH": str(args.baseline)}))
        if args.frozen:
            config = frozen_docker_config(args.frozen, made.root)
            variants.append(Variant("frozen", {**made.env, "DOCKER_CONFIG": str(config)}))
        if not args.no_table:
            document["rows"] = measure(args.n, made, variants)
        if args.no_profile:
            return
        dso_dir = made.projects["dso"]
        for argv in (["rotate", "--help"], ["up", "-d"], ["rotate", "web", "--force"]):
            importtime(argv, made.env, dso_dir, args.top)
        for argv in (["up", "-d"], ["rotate", "web", "--force"]):
            profile(argv, made.env, dso_dir, args.top)


if __name__ == "__main__":
    main()
