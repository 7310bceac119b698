"""Agent + providers resident at idle, all four providers configured and in use (issue 13).

A real ``dso agent`` on a throwaway home and compose project whose one service references a
secret in each provider: ``local`` (the vault, watched with inotify), ``vault`` (OpenBao
``-dev``), ``aws`` (moto) and ``azure`` (the HTTPS Key Vault double of the tests). The agent's
first check starts every provider; the figures are taken ``--settle`` seconds later, with

- ``idle_timeout: 0s``: every provider stays resident (what the issue measured: ~200 MiB);
- ``idle_timeout: <--idle-timeout>``: providers with no watch stop after it (local keeps its
  watch, so it stays), as with the default ``1m`` between two polls of the default ``5m``.

RSS double-counts the pages the processes share (the Python runtime); PSS divides them among
the sharers and is the fair total. Goal: ≤ 100 MB in total at idle.

    .venv/bin/python bench/provider_idle.py [--idle-timeout 3] [--settle 8] [--frozen] [--json]

``--frozen`` installs dist/plugins (``make build``) into the bench home, so the agent runs the
frozen providers instead of ``python -m providers.<name>``. ``--json``: the same output on
stderr, and both rows as one JSON document on stdout (bench/issue13.py reads it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from agent import Bench, children, rss_mb  # noqa: E402
from benchjson import json_stdout  # noqa: E402

GOAL_MB = 100.0
COMPOSE = """\
services:
  web:
    image: dso-test/busybox:1
    init: true
    stop_grace_period: 1s
    command: ["sleep", "infinity"]
    environment:
      LOCAL: dso://bench/msg
      VAULT: dso://vault:bench/msg#value
      AWS: dso://aws:bench-msg
      AZURE: dso://azure:bench-msg
"""


def pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def back_ends(directory: Path) -> Iterator[dict[str, dict[str, Any]]]:
    """OpenBao, moto and the Key Vault double, each holding the bench's secret."""
    from tests.fakes.azure_keyvault_double import provider_settings, running_double
    from tests.integration.servers import MotoServer, OpenBao

    with ExitStack() as stack:
        bao = OpenBao(directory / "openbao")
        stack.callback(bao.stop)
        bao.write("bench/msg", {"value": "v1"})
        moto = MotoServer(directory / "moto")
        stack.callback(moto.stop)
        moto.client().create_secret(Name="bench-msg", SecretString="v1")
        double = stack.enter_context(running_double(directory / "tls"))
        double.set_secret("bench-msg", "v1")
        yield {
            "vault": {"address": bao.address, "token": bao.root_token, "mount": "secret"},
            "aws": {
                "region": MotoServer.REGION,
                "endpoint_url": moto.endpoint,
                "access_key_id": "testing",
                "secret_access_key": "testing",
            },
            "azure": provider_settings(double),
        }


def config_text(settings: dict[str, dict[str, Any]], idle_timeout: str) -> str:
    providers: dict[str, Any] = {"local": {"type": "local", "idle_timeout": idle_timeout}}
    for name, values in settings.items():
        providers[name] = {"type": name, "idle_timeout": idle_timeout, **values}
    document = {
        "version": 1,
        "default_provider": "local",
        "providers": providers,
        "agent": {"watch": {"polling_interval": "5m", "debounce_window": "1s"}},
    }
    return json.dumps(document, indent=1)  # JSON is YAML


def measure(
    settings: dict[str, dict[str, Any]], idle_timeout: str, settle: float, frozen: bool
) -> dict[str, Any]:
    bench = Bench()
    try:
        bench.dso("init")
        if frozen:
            subprocess.run(
                [sys.executable, str(REPO / "build" / "build_providers.py"), "install",
                 "--plugins-dir", str(bench.root / "home" / "plugins")],
                check=True, capture_output=True,
            )  # fmt: skip
        config = bench.root / "home" / "config.yaml"
        config.write_text(config_text(settings, idle_timeout))
        config.chmod(0o600)
        (bench.root / "compose.yaml").write_text(COMPOSE)
        bench.set_secret()
        bench.dso("up", "-d")
        bench.start_agent()
        assert bench.agent is not None
        pid = bench.agent.pid
        time.sleep(settle)
        kids = children(pid)
        log = (bench.root / "agent.log").read_text()
        return {
            "idled": sorted(
                name
                for name in ("local", "vault", "aws", "azure")
                if f"provider {name} idle" in log
            ),
            "agent_rss": rss_mb(pid),
            "agent_pss": pss_mb(pid),
            "providers_rss": sum(rss_mb(k) for k in kids),
            "providers_pss": sum(pss_mb(k) for k in kids),
            "processes": len(kids),
        }
    finally:
        bench.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--idle-timeout", type=float, default=3.0, help="seconds (default 3)")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds after the start")
    parser.add_argument("--frozen", action="store_true", help="run the dist/plugins bundles")
    parser.add_argument("--json", action="store_true", help="both rows as JSON on stdout")
    args = parser.parse_args()
    with json_stdout(args.json) as document:
        run(args, document)


def run(args: argparse.Namespace, document: dict[str, Any]) -> None:
    mode = "frozen" if args.frozen else "source"
    print(
        f"agent + providers at idle, all four configured and used ({mode} providers);"
        f" measured {args.settle:g} s after the agent started"
    )
    print(
        f"{'idle_timeout':14} {'agent RSS':>10} {'providers RSS':>14} {'procs':>6}"
        f" {'total RSS':>10} {'total PSS':>10} {'PSS/goal':>9}"
    )
    rows: list[dict[str, Any]] = []
    document.update(mode=mode, settle_s=args.settle, goal_mb=GOAL_MB, rows=rows)
    with (
        tempfile.TemporaryDirectory(prefix="dso-bench-idle-") as tmp,
        back_ends(Path(tmp)) as settings,
    ):
        for label in ("0s", f"{args.idle_timeout:g}s"):
            row = measure(settings, label, args.settle, args.frozen)
            total_rss = row["agent_rss"] + row["providers_rss"]
            total_pss = row["agent_pss"] + row["providers_pss"]
            rows.append(
                {"idle_timeout": label, "total_rss": total_rss, "total_pss": total_pss, **row}
            )
            print(
                f"{label:14} {row['agent_rss']:8.1f}MB {row['providers_rss']:12.1f}MB"
                f" {row['processes']:6d} {total_rss:8.1f}MB {total_pss:8.1f}MB"
                f" {total_pss / GOAL_MB:8.2f}x  idled out: {', '.join(row['idled']) or '-'}"
            )
    print(f"goal: <= {GOAL_MB:.0f} MB in total at idle (issue 13; measured ~200 MiB before)")


if __name__ == "__main__":
    main()
