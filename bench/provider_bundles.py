"""Size and cold start of each provider, frozen (PyInstaller onedir) and from source.

Cold start is measured from just before exec to the decoded handshake frame (what the kernel
waits for, DESIGN.md §9: ≤ 250 ms for the boto3/azure providers, ≤ 100 ms for local), and, where
a back end is at hand without network, to the answer of ``configure`` (the moment a provider
can serve: local over a seeded vault, azure against the HTTPS Key Vault double, which includes
importing the Azure SDK and getting a token). Median and p90 over N runs; ratios to the target
below 1.0 meet it. Each provider's frozen and source runs alternate, and a last line gives
frozen / source (issue 13's goal: frozen ≤ source, i.e. ≤ 1.00).

    .venv/bin/python bench/provider_bundles.py [-n 15] [--build] [--json]

``--build`` runs ``make build``'s driver first (incremental); otherwise bundles missing from
dist/plugins are reported as such. ``--json``: the same output on stderr, and the medians as one
JSON document on stdout (bench/issue13.py reads it).
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from benchjson import json_stdout

from kernel.conformance.seed import seed_local_vault
from kernel.protocol import FrameDecoder, MessageWriter, decode_message, provider_environment

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "dist" / "plugins"
PROVIDERS = ("local", "vault", "aws", "azure")
#: DESIGN.md §9 cold-start targets, milliseconds to the handshake.
TARGET_MS = {"local": 100.0, "vault": 250.0, "aws": 250.0, "azure": 250.0}


def read_frame(fd: int, decoder: FrameDecoder, pending: list[bytes], timeout: float) -> Any:
    end = time.monotonic() + timeout
    while not pending:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError("no frame from the provider")
        data = os.read(fd, 1 << 16)
        if not data:
            raise EOFError("the provider closed stdout")
        pending.extend(decoder.feed(data))
    return decode_message(pending.pop(0))


def one_start(
    argv: list[str], env: dict[str, str], settings: dict[str, Any] | None
) -> tuple[float, float | None]:
    """Milliseconds to the handshake, and to the configure answer (when settings are given)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        decoder, pending = FrameDecoder(), list[bytes]()
        read_frame(proc.stdout.fileno(), decoder, pending, 10)
        handshake = (time.perf_counter() - started) * 1000
        ready = None
        if settings is not None:
            MessageWriter(proc.stdin.fileno()).send(
                [0, 1, "configure", {"settings": settings, "deadline": time.time() + 30}]
            )
            answer = read_frame(proc.stdout.fileno(), decoder, pending, 30)
            if getattr(answer, "error", None) is not None:
                raise RuntimeError(f"configure failed: {answer.error}")
            ready = (time.perf_counter() - started) * 1000
        return handshake, ready
    finally:
        proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[max(0, int(len(ordered) * 0.9) - 1)]
    return f"{statistics.median(ordered):7.1f} {p90:7.1f}"


def bundle_size(name: str) -> tuple[float, int] | None:
    root = PLUGINS / f"dso-provider-{name}"
    if not root.is_dir():
        return None
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return sum(p.stat().st_size for p in files) / 1e6, len(files)


@contextmanager
def back_ends(stack: ExitStack) -> Iterator[dict[str, dict[str, Any]]]:
    """Configure settings for the providers whose back end runs locally without a server."""
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    (directory / "local").mkdir()
    settings: dict[str, dict[str, Any]] = {
        "local": dict(seed_local_vault(directory / "local").settings)
    }
    try:
        from tests.fakes.azure_keyvault_double import provider_settings, running_double
    except ImportError:  # the tests are not shipped: measure the handshake only
        yield settings
        return
    double = stack.enter_context(running_double(directory / "tls"))
    double.set_secret("bench", "x")
    settings["azure"] = provider_settings(double)
    yield settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=15, help="runs per case (default 15)")
    parser.add_argument("--build", action="store_true", help="bring dist/plugins up to date")
    parser.add_argument("--json", action="store_true", help="medians as JSON on stdout")
    args = parser.parse_args()
    with json_stdout(args.json) as document:
        run(args, document)


def run(args: argparse.Namespace, document: dict[str, Any]) -> None:
    if args.build:
        subprocess.run([sys.executable, str(REPO / "build" / "build_providers.py"), "build"],
                       check=True)  # fmt: skip
    cleared = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE")
    env = provider_environment({k: v for k, v in os.environ.items() if k not in cleared})
    print(f"provider cold start, median/p90 of {args.n} runs; targets from DESIGN.md §9")
    print(
        f"{'provider':9} {'mode':7} {'size MB':>8} {'files':>6} {'handshake ms':>15}"
        f" {'target':>7} {'ratio':>6} {'configured ms':>15}"
    )
    document.update(runs=args.n, plugins=str(PLUGINS), providers={})
    with ExitStack() as stack, back_ends(stack) as settings:
        for name in PROVIDERS:
            modes = {"frozen": [str(PLUGINS / f"dso-provider-{name}" / f"dso-provider-{name}")]}
            if (REPO / "providers" / name / "__main__.py").is_file():
                modes["source"] = [sys.executable, "-m", f"providers.{name}"]
            if bundle_size(name) is None:
                print(f"{name:9} {'frozen':7} {'not built (make build)':>30}")
                del modes["frozen"]
            # Alternating, so a noisy neighbour hurts both modes alike.
            all_runs: dict[str, list[tuple[float, float | None]]] = {mode: [] for mode in modes}
            for _ in range(args.n):
                for mode, argv in modes.items():
                    all_runs[mode].append(one_start(argv, env, settings.get(name)))
            medians: dict[str, tuple[float, float | None]] = {}
            for mode, runs in all_runs.items():
                size = bundle_size(name) if mode == "frozen" else None
                handshakes = [h for h, _ in runs]
                ready = [r for _, r in runs if r is not None]
                target = TARGET_MS[name]
                ratio = statistics.median(handshakes) / target
                sized = f"{size[0]:8.1f} {size[1]:6d}" if size else f"{'-':>8} {'-':>6}"
                print(
                    f"{name:9} {mode:7} {sized} {summary(handshakes)} {target:7.0f}"
                    f" {ratio:6.2f} {summary(ready) if ready else '-':>15}"
                )
                medians[mode] = (
                    statistics.median(handshakes),
                    statistics.median(ready) if ready else None,
                )
            document["providers"][name] = {
                "built": bundle_size(name) is not None,
                **{
                    mode: {"handshake_ms": handshake, "configured_ms": ready}
                    for mode, (handshake, ready) in medians.items()
                },
            }
            if len(medians) == 2:
                (fh, fr), (sh, sr) = medians["frozen"], medians["source"]
                configured = f", configured {fr / sr:.2f}x" if fr and sr else ""
                print(f"{name:9} frozen/source: handshake {fh / sh:.2f}x{configured}")


if __name__ == "__main__":
    main()
