"""Wall time of `docker dso version` and of the metadata call docker makes before it.

Targets: DESIGN.md §9 `docker dso version` ≤ 150 ms end to end (docker runs the plugin twice);
issue 13: ≤ 80 ms, and `docker dso --help` ≤ 100 ms (bench/cli_profile.py prints those rows as
ratios, with the frozen program too). Prints median and p90 over N runs; needs `dso install`
done (scripts/demo does it).

    .venv/bin/python bench/cli_startup.py [-n 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def measure(argv: list[str], runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=30)
    args = parser.parse_args()
    subprocess.run([BIN / "dso", "install"], check=True, capture_output=True)
    cases = {
        "python -c pass (floor)": [sys.executable, "-c", "pass"],
        "docker-dso docker-cli-plugin-metadata": [BIN / "docker-dso", "docker-cli-plugin-metadata"],
        "docker-dso dso version": [BIN / "docker-dso", "dso", "version"],
        "docker dso version (goal 80 ms)": ["docker", "dso", "version"],
        "docker dso --help (goal 100 ms)": ["docker", "dso", "--help"],
        "docker version (docker's own, for scale)": ["docker", "version"],
    }
    print(f"{'command':45} {'median ms':>10} {'p90 ms':>8}")
    for name, argv in cases.items():
        median, p90 = measure([str(a) for a in argv], args.n)
        print(f"{name:45} {median:10.1f} {p90:8.1f}")


if __name__ == "__main__":
    main()
