"""Cost of the rotation journal's operations as the kept history grows.

Target (issue 10): an in-flight step (``Journal.save`` of an unfinished entry) costs the same
whatever the history holds, ≤ 5 ms with 10,000 finished rotations kept. Compares the journal
of ``--before`` (default: the last commit with the schema-1 journal, loaded from git into a
temporary module) with the working tree's. Each history is a schema-1 ``rotations.json`` of
realistic finished entries; the new journal migrates it once (not timed). Prints the median
over ``-n`` runs, in milliseconds; "cold" is a new ``Journal`` object (a new CLI process),
"warm" the same object again (an agent).

    .venv/bin/python bench/journal.py [-n 5] [--sizes 0,1000,3000,10000] [--before REV]
        [--no-before] [--json]

``--no-before`` measures the working tree's journal only (the old one takes seconds per save
with 10,000 kept); its column shows ``-``. ``--json``: the same output on stderr, and on stdout
one JSON document of the figures plus issue 13's reference, one ``atomic_write`` alone of an
entry's document in the same directory (bench/issue13.py reads it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from benchjson import json_stdout

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: The last commit whose journal kept every entry in one rotations.json (schema 1).
BEFORE = "13e7a5e"
AT = 1_800_000_000.0
STEPS = ["plan", "create_new", "deliver_files", "start_new", "health_gate", "attach_aliases"]


def load_before(rev: str, workdir: Path) -> ModuleType:
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:kernel/rotation/journal.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = workdir / "journal_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("journal_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def entry_doc(n: int, *, finished: bool) -> dict[str, Any]:
    """An entry shaped like a real rolling rotation (about 1.5 kB of JSON)."""
    at = AT - 86400 + n
    return {
        "id": f"{n:08x}",
        "trace_id": f"{n:032x}",
        "target": f"web-{n % 50}",
        "strategy": "rolling",
        "strategy_reason": "auto: no fixed host ports, the service runs one replica",
        "status": "completed" if finished else "in_progress",
        "step": STEPS[-1] if finished else "plan",
        "steps": [{"step": s, "at": at + i} for i, s in enumerate(STEPS[: 6 if finished else 1])],
        "old_id": "a" * 64,
        "old_name": f"web-{n % 50}",
        "new_id": "b" * 64,
        "new_name": f"web-{n % 50}_dso_new_{n:08x}",
        "backup_name": f"web-{n % 50}_dso_backup_{n:08x}",
        "lock_key": f"container-web-{n % 50}",
        "old_files_dir": "/run/user/1000/dso/secrets/shop/web",
        "files_dir": f"/run/user/1000/dso/secrets/shop/web@{n:08x}",
        "references": {"DB_PASSWORD": "dso://app/db", "API_KEY": "dso://app/api"},
        "versions": {
            "DB_PASSWORD": {"from": "local:1", "to": "local:2"},
            "API_KEY": {"from": "local:7", "to": "local:7"},
        },
        "started_at": at,
        "updated_at": at + 6,
        "finished_at": at + 6 if finished else None,
        "health": {"healthy": True, "probe": "healthcheck", "reason": "passed", "attempts": 1},
        "lock": {"waited": 0.0, "contended": False},
        "pid": 4711,
        "host": "bench",
    }


def seed(state: Path, kept: int) -> None:
    state.mkdir(parents=True)
    doc = {"schema": 1, "rotations": [entry_doc(n, finished=True) for n in range(kept)]}
    (state / "rotations.json").write_text(json.dumps(doc, indent=1, sort_keys=True))


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def measure(module: ModuleType, state: Path, kept: int, runs: int) -> dict[str, float]:
    journal_cls, entry_cls = module.Journal, module.RotationEntry
    journal = journal_cls(state)
    journal.entries()  # the new journal migrates the schema-1 file here
    samples: dict[str, list[float]] = {}

    def sample(name: str, action: Callable[[], object]) -> None:
        samples.setdefault(name, []).append(timed(action))

    for run in range(runs):
        entry = entry_cls.from_dict(entry_doc(kept + 1000 + run, finished=False))
        journal.save(entry)
        for step in STEPS[1:]:
            entry.steps.append({"step": step, "at": time.time()})
            entry.step = step
            sample("save, in-flight step", lambda e=entry: journal.save(e))
        entry.status, entry.finished_at = "completed", time.time()
        sample("save, finishing", lambda e=entry: journal.save(e))
        sample("needing_recovery()", journal.needing_recovery)
        sample("prune(), nothing due", journal.prune)
        sample("entries(), warm", journal.entries)
        sample("entries(), cold", lambda: journal_cls(state).entries())
    return {name: statistics.median(values) for name, values in samples.items()}


def atomic_write_ms(directory: Path, runs: int) -> float:
    """Median ms of one ``atomic_write`` of an entry's document (issue 13's reference)."""
    from kernel.atomic_write import atomic_write

    directory.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"schema": 2, "rotation": entry_doc(0, finished=False)}).encode()
    target = directory / "one.json"
    atomic_write(target, data)
    return statistics.median(timed(lambda: atomic_write(target, data)) for _ in range(runs * 6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--sizes", default="0,1000,3000,10000", help="finished entries kept")
    parser.add_argument("--before", default=BEFORE, help="git revision of the old journal")
    parser.add_argument("--no-before", action="store_true", help="the working tree's only")
    parser.add_argument("--json", action="store_true", help="figures as JSON on stdout")
    args = parser.parse_args()
    with json_stdout(args.json) as document:
        run(args, document)


def run(args: argparse.Namespace, document: dict[str, Any]) -> None:
    from kernel.rotation import journal as after

    with tempfile.TemporaryDirectory(prefix="dso-bench-journal-") as tmp:
        work = Path(tmp)
        before = None if args.no_before else load_before(args.before, work)
        kept_figures: dict[str, dict[str, dict[str, float]]] = {}
        document.update(runs=args.n, before=None if before is None else args.before)
        document["kept"] = kept_figures
        print(f"{'kept':>6} {'operation':24} {'before ms':>10} {'after ms':>9} {'ratio':>7}")
        for kept in (int(s) for s in args.sizes.split(",")):
            figures = {}
            for label, module in (("before", before), ("after", after)):
                if module is None:
                    continue
                state = work / f"{label}-{kept}"
                seed(state, kept)
                figures[label] = measure(module, state, kept, args.n)
            kept_figures[str(kept)] = figures
            for name, new in figures["after"].items():
                if "before" not in figures:
                    print(f"{kept:6} {name:24} {'-':>10} {new:9.2f} {'-':>7}")
                    continue
                old = figures["before"][name]
                ratio = old / new if new else float("inf")
                print(f"{kept:6} {name:24} {old:10.2f} {new:9.2f} {ratio:6.1f}x")
        if args.json:
            document["atomic_write_ms"] = atomic_write_ms(work / "atomic", args.n)


if __name__ == "__main__":
    main()
