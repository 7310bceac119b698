"""Provider RPC over real pipes: dso's msgpack frames vs newline-delimited JSON-RPC, same run.

Every figure comes from real child processes talking over real pipes:

- **dso**: :class:`kernel.provider_host.ProviderClient` (futures by id, host-side deadlines,
  latency stats) against tests/fakes/echo_provider.py (the provider SDK: validation, deadlines,
  worker pool). ``ping`` round trips (p50/p95) and pipelined throughput (a sliding window of
  requests in flight).
- **JSON-lines JSON-RPC** (the framing other tools in this field use) and **msgpack frames**,
  each through the *same* tiny client (reader thread on the raw fd, futures by id) and the
  *same* tiny server (this file with ``--tiny-server``): their ratio isolates the wire format.
  The tiny stack does far less than dso's; the second ratio shows what the whole dso stack
  costs against a minimal JSON-lines one.
- a bare msgpack loop (one thread, blocking reads, no host client) against the SDK echo
  provider: the floor;
- ``get``/``versions`` round trips of the local vault provider (it keeps the decrypted vault
  while vault.enc is unchanged), against the issue's goal (0.1 ms) and this run's bare msgpack
  loop and dso ping (the issue measured 0.255 ms when it decrypted on every call, against a
  0.065 ms msgpack round trip);
- cold start to handshake of the local and echo providers, run from source.

Targets (DESIGN.md §9): p50 ≤ 0.15 ms and ≥ 50k small requests/s pipelined (the dso row);
local ``get`` p50 ≤ 0.1 ms while the file is unchanged (issue 13).

    .venv/bin/python bench/provider_rpc.py [-n 5000] [--pipelined 50000] [--window 256]
                                           [--repeat 5] [--starts 10] [--json]

``--json``: the same output on stderr, and the medians as one JSON document on stdout
(bench/issue13.py reads it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import msgpack
from benchjson import json_stdout

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kernel.protocol import (  # noqa: E402
    FrameDecoder,
    Handshake,
    MessageWriter,
    SecretRef,
    decode_message,
    encode_frame,
    provider_environment,
)
from kernel.provider_host import ProviderClient, ProviderCommand, source_command  # noqa: E402

ECHO = REPO / "tests" / "fakes" / "echo_provider.py"
#: Issue 13: the local provider's get while vault.enc is unchanged, and its reference.
LOCAL_GET_GOAL_MS = 0.1
MSGPACK_REFERENCE_MS = 0.065
READ = 256 * 1024


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- the tiny stack: one server and one client, two wire formats --------------------------------


def tiny_server(wire: str) -> None:
    """Answers ``ping`` on stdin; the answers to one read leave in one write (as the SDK does).
    ``jsonl``: ``{"jsonrpc", "id", "method", "params"}`` lines; ``msgpack``: dso frames."""
    if wire == "jsonl":
        pending = b""
        while data := os.read(0, READ):
            pending += data
            *lines, pending = pending.split(b"\n")
            out = []
            for line in lines:
                request = json.loads(line)
                result = {"time": time.time()}
                out.append(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}))
            if out:
                _write_all(1, ("\n".join(out) + "\n").encode())
        return
    decoder = FrameDecoder()
    pack = msgpack.Packer(use_bin_type=True).pack
    while data := os.read(0, READ):
        answers = []
        for body in decoder.feed(data):
            request = msgpack.unpackb(body)
            answers.append(encode_frame(pack([1, request[1], None, {"time": time.time()}])))
        if answers:
            _write_all(1, b"".join(answers))


class TinyClient:
    """Built like ProviderClient (a reader thread on the raw fd, futures by id, a lock around
    writes) minus deadlines, stats and validation; speaks either wire format."""

    def __init__(self, wire: str) -> None:
        self.wire = wire
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--tiny-server", wire],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.out = self.proc.stdin.fileno()
        self.ids = itertools.count(1)
        self.pending: dict[int, Future[Any]] = {}
        self.lock = threading.Lock()
        self.write_lock = threading.Lock()
        self.pack = msgpack.Packer(use_bin_type=True).pack
        reader = self._read_jsonl if wire == "jsonl" else self._read_msgpack
        threading.Thread(target=reader, args=(self.proc.stdout.fileno(),), daemon=True).start()

    def _resolve(self, msg_id: int, result: Any) -> None:
        with self.lock:
            future = self.pending.pop(msg_id)
        future.set_result(result)

    def _read_jsonl(self, fd: int) -> None:
        buffer = b""
        while data := os.read(fd, READ):
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                response = json.loads(line)
                self._resolve(response["id"], response["result"])

    def _read_msgpack(self, fd: int) -> None:
        decoder = FrameDecoder()
        while data := os.read(fd, READ):
            for body in decoder.feed(data):
                response = msgpack.unpackb(body)
                self._resolve(response[1], response[3])

    def submit(self, method: str, params: dict[str, Any]) -> Future[Any]:
        future: Future[Any] = Future()
        with self.lock:
            msg_id = next(self.ids)
            self.pending[msg_id] = future
        if self.wire == "jsonl":
            request = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}
            data = (json.dumps(request) + "\n").encode()
        else:
            data = encode_frame(self.pack([0, msg_id, method, params]))
        with self.write_lock:
            _write_all(self.out, data)
        return future

    def call(self, method: str, params: dict[str, Any]) -> Any:
        return self.submit(method, params).result()

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(5)
        self.proc.stdout.close()


# -- the floor: a bare msgpack loop against the SDK echo provider --------------------------------


class BareMsgpack:
    """The echo provider driven by one thread with blocking reads: no futures, no deadlines."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ECHO)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=provider_environment(os.environ, ["PYTHONPATH"]),
            bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.writer = MessageWriter(self.proc.stdin.fileno())
        self.fd = self.proc.stdout.fileno()
        self.decoder = FrameDecoder()
        self.frames: list[bytes] = []
        Handshake.from_message(self.recv())

    def recv(self) -> Any:
        while not self.frames:
            self.frames.extend(reversed(self.decoder.feed(os.read(self.fd, READ))))
        return decode_message(self.frames.pop())

    def call(self, msg_id: int) -> None:
        self.writer.send([0, msg_id, "ping", {"deadline": time.time() + 60}])
        self.recv()

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(5)
        self.proc.stdout.close()


# -- measuring --------------------------------------------------------------------------------


def round_trips(call: Callable[[int], object], n: int, warmup: int = 500) -> tuple[float, float]:
    """p50 and p95 in milliseconds of ``n`` sequential calls after a warm-up."""
    for i in range(warmup):
        call(i)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - started)
    samples.sort()
    return samples[len(samples) // 2] * 1e3, samples[int(len(samples) * 0.95)] * 1e3


def pipelined(submit: Callable[[], Future[Any]], n: int, window: int) -> float:
    """Requests per second keeping ``window`` requests in flight (a sliding window)."""
    in_flight: deque[Future[Any]] = deque()
    started = time.perf_counter()
    for _ in range(n):
        if len(in_flight) >= window:
            in_flight.popleft().result()
        in_flight.append(submit())
    for future in in_flight:
        future.result()
    return n / (time.perf_counter() - started)


def cold_starts(command: ProviderCommand, runs: int) -> tuple[float, float]:
    """Median and p90 milliseconds from exec to a validated handshake."""
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        client = ProviderClient.start(command)
        samples.append((time.perf_counter() - started) * 1e3)
        client.close()
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.9) - 1)]


def local_vault(directory: Path) -> dict[str, str]:
    """A key-file vault with one secret; the local provider's settings for it."""
    from kernel.secret_value import SecretValue
    from kernel.vault import KeySource, Vault, create_key_file

    key_file, path = directory / "vault.key", directory / "vault.enc"
    create_key_file(key_file)
    vault = Vault.create(path, KeySource.from_env(key_file, environ={}))
    vault.set_many({"app/db_password": SecretValue(b"x" * 32)})
    return {"path": str(path), "key_file": str(key_file)}


def median_of(results: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    """The per-column median of repeated (p50, p95, rate) measurements."""
    return (
        statistics.median(r[0] for r in results),
        statistics.median(r[1] for r in results),
        statistics.median(r[2] for r in results),
    )


def row(label: str, p50: float, p95: float, rate: float | None) -> None:
    shown = f"{rate:16,.0f}" if rate is not None else f"{'-':>16}"
    print(f"{label:50} {p50:8.3f} {p95:8.3f} {shown}")


def ratio(label: str, slow: tuple[float, float, float], fast: tuple[float, float, float]) -> None:
    print(
        f"{label:50} {slow[0] / fast[0]:7.2f}x {slow[1] / fast[1]:7.2f}x {fast[2] / slow[2]:15.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="sequential round trips")
    parser.add_argument("--pipelined", type=int, default=50000, help="pipelined requests")
    parser.add_argument("--window", type=int, default=256, help="requests in flight")
    parser.add_argument("--starts", type=int, default=10, help="cold starts per provider")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved repeats (median)")
    parser.add_argument("--json", action="store_true", help="medians as JSON on stdout")
    parser.add_argument("--tiny-server", choices=("jsonl", "msgpack"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tiny_server:
        tiny_server(args.tiny_server)
        return
    with json_stdout(args.json) as document:
        run(args, document)


def run(args: argparse.Namespace, document: dict[str, Any]) -> None:
    print(
        f"provider RPC over real pipes: Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    echo_command = ProviderCommand("echo", (sys.executable, str(ECHO)), "path")
    echo = ProviderClient.start(echo_command)
    clients = {wire: TinyClient(wire) for wire in ("jsonl", "msgpack")}
    bare = BareMsgpack()
    runs: dict[str, list[tuple[float, float, float]]] = {"dso": [], "jsonl": [], "msgpack": []}
    bare_runs: list[tuple[float, float]] = []
    # Interleaved repeats, so a noisy neighbour hurts every stack alike; medians are reported.
    for _ in range(args.repeat):
        p50, p95 = round_trips(lambda i: echo.call("ping", {}), args.n)
        rate = pipelined(lambda: echo.submit("ping", {}), args.pipelined, args.window)
        runs["dso"].append((p50, p95, rate))
        for wire, client in clients.items():
            p50, p95 = round_trips(lambda i, c=client: c.call("ping", {}), args.n)  # type: ignore[misc]
            rate = pipelined(lambda c=client: c.submit("ping", {}), args.pipelined, args.window)  # type: ignore[misc]
            runs[wire].append((p50, p95, rate))
        bare_runs.append(round_trips(bare.call, args.n))
    echo.close()
    for client in clients.values():
        client.close()
    bare.close()
    dso = median_of(runs["dso"])
    tiny = {wire: median_of(runs[wire]) for wire in clients}
    bare_p50 = statistics.median(r[0] for r in bare_runs)
    bare_p95 = statistics.median(r[1] for r in bare_runs)
    document.update(
        repeat=args.repeat,
        round_trips=args.n,
        ping={
            "dso": dict(zip(("p50_ms", "p95_ms", "per_s"), dso, strict=True)),
            **{
                wire: dict(zip(("p50_ms", "p95_ms", "per_s"), figures, strict=True))
                for wire, figures in tiny.items()
            },
            "bare_msgpack": {"p50_ms": bare_p50, "p95_ms": bare_p95},
        },
        local=None,
    )

    print(
        f"\nping: {args.n} round trips; {args.pipelined} pipelined, window {args.window};"
        f" median of {args.repeat} interleaved repeats"
    )
    print(f"{'':50} {'p50 ms':>8} {'p95 ms':>8} {'pipelined req/s':>16}")
    row("dso: ProviderClient <-> SDK echo provider", *dso)
    row("JSON-lines JSON-RPC: tiny client <-> tiny server", *tiny["jsonl"])
    row("msgpack frames: same tiny client <-> tiny server", *tiny["msgpack"])
    row("bare msgpack loop <-> SDK echo (no host client)", bare_p50, bare_p95, None)
    print("ratios, slower / faster (>1: the second is faster)")
    ratio("  JSON-lines / msgpack frames (same tiny code)", tiny["jsonl"], tiny["msgpack"])
    ratio("  tiny JSON-lines stack / whole dso stack", tiny["jsonl"], dso)
    met = dso[0] <= 0.15 and dso[2] >= 50_000
    print(f"target (dso row): p50 <= 0.150 ms and >= 50,000 req/s: {'met' if met else 'NOT met'}")

    local = source_command("local")
    if local is not None:
        with tempfile.TemporaryDirectory() as tmp:
            client = ProviderClient.start(local, settings=local_vault(Path(tmp)))
            refs = [SecretRef("r", "app/db_password")]
            n = min(args.n, 2000)
            gets, versions_runs, pings = [], [], []
            for _ in range(args.repeat):  # interleaved with ping on the same provider
                gets.append(round_trips(lambda i: client.get(refs), n, 100))
                versions_runs.append(round_trips(lambda i: client.versions(refs), n, 100))
                pings.append(round_trips(lambda i: client.call("ping", {}), n, 100))
            client.close()
        get = (statistics.median(r[0] for r in gets), statistics.median(r[1] for r in gets))
        versions = tuple(statistics.median(r[i] for r in versions_runs) for i in (0, 1))
        ping = (statistics.median(r[0] for r in pings), statistics.median(r[1] for r in pings))
        document["local"] = {
            "round_trips": n,
            "get": {"p50_ms": get[0], "p95_ms": get[1]},
            "versions": {"p50_ms": versions[0], "p95_ms": versions[1]},
            "ping": {"p50_ms": ping[0], "p95_ms": ping[1]},
            "goal_ms": LOCAL_GET_GOAL_MS,
            "issue_msgpack_ms": MSGPACK_REFERENCE_MS,
        }
        print(
            "\nlocal vault provider: vault.enc unchanged (decrypted once, then one stat + one"
            f" pread per call); median of {args.repeat}"
        )
        row("get, one reference", *get, None)
        row("versions, one reference", *versions, None)
        row("ping, same provider", *ping, None)
        print(
            f"local get p50 / goal {LOCAL_GET_GOAL_MS} ms: {get[0] / LOCAL_GET_GOAL_MS:.2f}x"
            f" ({'met' if get[0] <= LOCAL_GET_GOAL_MS else 'NOT met'});"
            f" / bare msgpack loop this run ({bare_p50:.3f} ms): {get[0] / bare_p50:.2f}x;"
            f" / issue's msgpack round trip {MSGPACK_REFERENCE_MS} ms:"
            f" {get[0] / MSGPACK_REFERENCE_MS:.2f}x; / ping: {get[0] / ping[0]:.2f}x"
        )

    print(f"\ncold start to handshake, {args.starts} runs each, from source (python …)")
    print(f"{'':50} {'median ms':>9} {'p90 ms':>8}")
    commands = [("local (python -m providers.local)", local)] if local is not None else []
    commands.append(("echo (tests/fakes/echo_provider.py)", echo_command))
    for label, command in commands:
        assert command is not None
        median, p90 = cold_starts(command, args.starts)
        print(f"{label:50} {median:9.1f} {p90:8.1f}")
    print("(targets, DESIGN §9, are for frozen onedir binaries: local <= 100 ms)")


if __name__ == "__main__":
    main()
