"""The health gate: is the new container ready to take traffic? (DESIGN.md §5)

Docker runs a container's HEALTHCHECK once per *interval* (30 s by default), and API 1.41 has
no ``start_interval``, so waiting for Docker's ``healthy`` would stall every rotation for a full
interval. The gate runs the same check itself, through ``exec``, every ~100 ms until it passes,
and also accepts Docker's own ``healthy`` status should Docker get there first.

Images without a HEALTHCHECK get a probe configured by label on the container:

- ``dso.health.exec``: a shell command run inside the container (``sh -c``), or a JSON array;
- ``dso.health.tcp``: a port; connected to from the host at the container's address;
- ``dso.health.http``: ``PORT[/path]``; an HTTP GET from the host, any status below 400 passes;
- ``dso.health.running``: a duration (``2s``): the container must stay up that long.

Without either, the container must stay up for :data:`DEFAULT_RUNNING` seconds. A container
that exits fails the gate at once. On failure the report keeps diagnostics for ``status``: the
last exit code, the last output (capped: it is the application's output, never a value dso put
there, but it could be large), the number of attempts and the time spent.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from kernel.config.units import parse_duration
from kernel.containers.client import docker_errors
from kernel.containers.view import ContainerView
from kernel.errors import DockerError, UsageError

if TYPE_CHECKING:
    import docker

EXEC_LABEL = "dso.health.exec"
TCP_LABEL = "dso.health.tcp"
HTTP_LABEL = "dso.health.http"
RUNNING_LABEL = "dso.health.running"
#: Seconds a container without any health check must stay up.
DEFAULT_RUNNING = 1.0
#: Seconds between two probe attempts.
DEFAULT_INTERVAL = 0.1
#: Bytes of probe output kept for diagnostics.
OUTPUT_LIMIT = 4096
#: Seconds one attempt of a HEALTHCHECK without its own timeout may take (Docker's default).
_DEFAULT_ATTEMPT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Probe:
    """How health is checked: ``healthcheck``, ``exec``, ``tcp``, ``http`` or ``running``."""

    kind: str
    command: tuple[str, ...] = ()
    port: int = 0
    path: str = "/"
    #: ``running``: seconds the container must stay up.
    duration: float = 0.0
    #: Seconds one attempt may take.
    timeout: float = 5.0

    def describe(self) -> str:
        if self.kind in ("healthcheck", "exec"):
            return f"{self.kind} {json.dumps(list(self.command))}"
        if self.kind == "tcp":
            return f"tcp port {self.port}"
        if self.kind == "http":
            return f"http GET :{self.port}{self.path}"
        return f"running for {self.duration:g}s"


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The gate's verdict and what it saw; serialisable into the journal."""

    healthy: bool
    probe: str
    reason: str
    attempts: int
    elapsed: float
    last_exit_code: int | None = None
    last_output: str = ""

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["elapsed"] = round(self.elapsed, 3)
        return doc


def probe_for(view: ContainerView, *, default_running: float = DEFAULT_RUNNING) -> Probe:
    """The probe for ``view``: a ``dso.health.*`` label, else its HEALTHCHECK, else running."""
    labels = view.labels
    if labels.get(EXEC_LABEL):
        raw = labels[EXEC_LABEL]
        command = _json_list(raw) or [*view.shell, raw]
        return Probe("exec", tuple(command))
    if labels.get(TCP_LABEL):
        return Probe("tcp", port=_port(labels[TCP_LABEL], TCP_LABEL))
    if labels.get(HTTP_LABEL):
        port, slash, path = labels[HTTP_LABEL].lstrip(":").partition("/")
        return Probe("http", port=_port(port, HTTP_LABEL), path="/" + path if slash else "/")
    if labels.get(RUNNING_LABEL):
        try:
            duration = parse_duration(labels[RUNNING_LABEL])
        except ValueError as exc:
            raise UsageError(f"label {RUNNING_LABEL}: {exc}") from None
        return Probe("running", duration=duration)
    test = view.healthcheck_test
    if test is not None:
        if test[0] == "CMD-SHELL":
            command = [*view.shell, " ".join(test[1:])]
        else:
            command = test[1:] if test[0] == "CMD" else test
        timeout = view.healthcheck_timeout or _DEFAULT_ATTEMPT_TIMEOUT
        return Probe("healthcheck", tuple(command), timeout=timeout)
    return Probe("running", duration=default_running)


def wait_healthy(
    client: docker.DockerClient,
    container_id: str,
    probe: Probe,
    *,
    timeout: float,
    interval: float = DEFAULT_INTERVAL,
    retries: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> HealthReport:
    """Probe ``container_id`` until it passes, exits, fails ``retries`` times, or ``timeout``."""
    started = clock()
    attempts = 0
    failures = 0
    exit_code: int | None = None
    output = ""
    while True:
        elapsed = clock() - started
        view = _inspect(client, container_id)
        if not view.running:
            code = view.state.get("ExitCode")
            return HealthReport(
                False,
                probe.describe(),
                f"the container stopped (exit code {code})",
                attempts,
                elapsed,
                int(code) if code is not None else exit_code,
                _logs_tail(client, container_id) or output,
            )
        if view.health_status == "healthy":
            reason = "docker reported healthy"
            return HealthReport(True, probe.describe(), reason, attempts, elapsed)
        remaining = timeout - elapsed
        if probe.kind == "running":
            if elapsed >= probe.duration:
                reason = f"stayed up for {probe.duration:g}s"
                return HealthReport(True, probe.describe(), reason, attempts, elapsed)
        else:
            attempts += 1
            passed, exit_code, output = _attempt(client, view, probe, max(0.05, remaining))
            if passed:
                return HealthReport(
                    True, probe.describe(), "probe passed", attempts, clock() - started, exit_code
                )
            failures += 1
            if retries is not None and failures >= retries:
                return HealthReport(
                    False,
                    probe.describe(),
                    f"the probe failed {failures} times",
                    attempts,
                    clock() - started,
                    exit_code,
                    output,
                )
        elapsed = clock() - started
        if elapsed >= timeout:
            return HealthReport(
                False,
                probe.describe(),
                f"not healthy within {timeout:g}s",
                attempts,
                elapsed,
                exit_code,
                output,
            )
        time.sleep(min(interval, max(0.0, timeout - elapsed)))


def _attempt(
    client: docker.DockerClient, view: ContainerView, probe: Probe, remaining: float
) -> tuple[bool, int | None, str]:
    limit = min(probe.timeout, remaining)
    if probe.kind in ("healthcheck", "exec"):
        return _bounded(lambda: _exec(client, view.id, probe.command), limit)
    address = view.ip_address or "127.0.0.1"
    if probe.kind == "tcp":
        return _tcp(address, probe.port, limit)
    return _http(address, probe.port, probe.path, limit)


def _bounded(
    call: Callable[[], tuple[bool, int | None, str]], limit: float
) -> tuple[bool, int | None, str]:
    """Run ``call`` in a thread; a hung exec counts as a failed attempt after ``limit``."""
    result: list[tuple[bool, int | None, str]] = []
    failure: list[str] = []

    def run() -> None:
        try:
            result.append(call())
        except DockerError as exc:
            failure.append(exc.message)

    worker = threading.Thread(target=run, name="dso-health-probe", daemon=True)
    worker.start()
    worker.join(limit)
    if result:
        return result[0]
    if failure:
        return False, None, _cap(failure[0])
    return False, None, f"the probe did not finish within {limit:.3g}s"


def _exec(
    client: docker.DockerClient, container_id: str, command: tuple[str, ...]
) -> tuple[bool, int | None, str]:
    with docker_errors(f"running the health probe in {container_id[:12]}"):
        exec_id = client.api.exec_create(container_id, list(command))["Id"]
        raw = client.api.exec_start(exec_id)
        code = client.api.exec_inspect(exec_id).get("ExitCode")
    text = _cap(raw if isinstance(raw, bytes) else b"")
    return code == 0, int(code) if code is not None else None, text


def _tcp(address: str, port: int, limit: float) -> tuple[bool, int | None, str]:
    try:
        with socket.create_connection((address, port), timeout=limit):
            return True, 0, ""
    except OSError as exc:
        return False, None, f"tcp {address}:{port}: {exc.strerror or exc}"


def _http(address: str, port: int, path: str, limit: float) -> tuple[bool, int | None, str]:
    connection = http.client.HTTPConnection(address, port, timeout=limit)
    try:
        connection.request("GET", path, headers={"User-Agent": "dso-health"})
        response = connection.getresponse()
        body = response.read(OUTPUT_LIMIT)
    except (OSError, http.client.HTTPException) as exc:
        return False, None, f"GET {address}:{port}{path}: {exc}"
    finally:
        connection.close()
    text = _cap(f"HTTP {response.status} {response.reason}\n".encode() + body)
    return response.status < 400, response.status, text


def _inspect(client: docker.DockerClient, container_id: str) -> ContainerView:
    with docker_errors(f"inspecting {container_id[:12]}"):
        return ContainerView(client.api.inspect_container(container_id))


def _logs_tail(client: docker.DockerClient, container_id: str) -> str:
    try:
        with docker_errors(f"reading the logs of {container_id[:12]}"):
            raw = client.api.logs(container_id, tail=50)
    except DockerError:
        return ""
    return _cap(raw if isinstance(raw, bytes) else b"")


def _cap(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    if len(data) > OUTPUT_LIMIT:
        data = b"[...]" + data[-OUTPUT_LIMIT:]
    return data.decode("utf-8", "replace")


def _json_list(raw: str) -> list[str] | None:
    if not raw.lstrip().startswith("["):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise UsageError(f"label {EXEC_LABEL}: not a JSON array of strings: {raw!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
        raise UsageError(f"label {EXEC_LABEL}: not a JSON array of strings: {raw!r}")
    return value


def _port(raw: str, label: str) -> int:
    try:
        port = int(raw.strip().lstrip(":"))
    except ValueError:
        raise UsageError(f"label {label}: {raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise UsageError(f"label {label}: {raw!r} is not a port number")
    return port
