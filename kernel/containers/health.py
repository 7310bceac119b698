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
that exits fails the gate at once, and so does a probe Docker cannot start at all (its program,
or the shell of a ``CMD-SHELL`` check, is not in the image): retrying cannot help. On failure the
report keeps diagnostics for ``status``: the exit code and output of the last probe that
*finished* (an attempt cut off by the deadline tells nothing; the output is capped: it is the
application's output, never a value dso put there, but it could be large), the number of
attempts and the time spent.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from kernel.config.units import parse_duration
from kernel.containers.client import docker_errors
from kernel.containers.view import ContainerView
from kernel.errors import DockerError, UsageError
from kernel.labels import (
    HEALTH_EXEC_LABEL,
    HEALTH_HTTP_LABEL,
    HEALTH_RUNNING_LABEL,
    HEALTH_TCP_LABEL,
)

if TYPE_CHECKING:
    import docker

#: Seconds a container without any health check must stay up.
DEFAULT_RUNNING = 1.0
#: Seconds between two probe attempts.
DEFAULT_INTERVAL = 0.1
#: Bytes of probe output kept for diagnostics.
OUTPUT_LIMIT = 4096
#: Seconds one attempt of a HEALTHCHECK without its own timeout may take (Docker's default).
_DEFAULT_ATTEMPT_TIMEOUT = 30.0
#: How dockerd reports an exec whose process could not be started (exit code 126 or 127).
_EXEC_FAILED = "OCI runtime exec failed"
_OTHER_PROBES = "a dso.health.tcp or dso.health.http label"


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
    #: The shell ``command`` is wrapped in (``CMD-SHELL``, a plain ``dso.health.exec``), else ().
    shell: tuple[str, ...] = ()

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
    if labels.get(HEALTH_EXEC_LABEL):
        raw = labels[HEALTH_EXEC_LABEL]
        command = _json_list(raw)
        if command is not None:
            return Probe("exec", tuple(command))
        return Probe("exec", (*view.shell, raw), shell=tuple(view.shell))
    if labels.get(HEALTH_TCP_LABEL):
        return Probe("tcp", port=_port(labels[HEALTH_TCP_LABEL], HEALTH_TCP_LABEL))
    if labels.get(HEALTH_HTTP_LABEL):
        port, slash, path = labels[HEALTH_HTTP_LABEL].lstrip(":").partition("/")
        return Probe("http", port=_port(port, HEALTH_HTTP_LABEL), path="/" + path if slash else "/")
    if labels.get(HEALTH_RUNNING_LABEL):
        try:
            duration = parse_duration(labels[HEALTH_RUNNING_LABEL])
        except ValueError as exc:
            raise UsageError(f"label {HEALTH_RUNNING_LABEL}: {exc}") from None
        return Probe("running", duration=duration)
    test = view.healthcheck_test
    if test is not None:
        timeout = view.healthcheck_timeout or _DEFAULT_ATTEMPT_TIMEOUT
        if test[0] == "CMD-SHELL":
            shell = tuple(view.shell)
            return Probe("healthcheck", (*shell, " ".join(test[1:])), timeout=timeout, shell=shell)
        argv = tuple(test[1:] if test[0] == "CMD" else test)
        return Probe("healthcheck", argv, timeout=timeout)
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
    attempts = failures = 0
    last: _Answer | None = None  # the last attempt that answered
    hung: _Answer | None = None  # a later one stopped by the probe's own timeout

    def report(healthy: bool, reason: str, code: int | None = None, out: str = "") -> HealthReport:
        elapsed = clock() - started
        return HealthReport(healthy, probe.describe(), reason, attempts, elapsed, code, out)

    def failed(head: str) -> HealthReport:
        code = last.exit_code if last else None
        seen = last or hung
        output = seen.output if seen else ""
        return report(False, _verdict(head, probe, last, hung, attempts), code, output)

    while True:
        elapsed = clock() - started
        view = _inspect(client, container_id)
        if not view.running:
            code = view.state.get("ExitCode")
            return report(
                False,
                f"the container stopped (exit code {code})",
                int(code) if code is not None else (last.exit_code if last else None),
                _logs_tail(client, container_id) or (last.output if last else ""),
            )
        if view.health_status == "healthy":
            return report(True, "docker reported healthy")
        if probe.kind == "running":
            if elapsed >= probe.duration:
                return report(True, f"stayed up for {probe.duration:g}s")
        else:
            attempts += 1
            limit = min(probe.timeout, max(0.05, timeout - elapsed))
            answer = _attempt(client, view, probe, limit)
            if answer.passed:
                return report(True, "probe passed", answer.exit_code)
            if answer.broken:
                return report(False, answer.broken, answer.exit_code, answer.output)
            # An attempt the gate's deadline cut short says nothing about the probe: it neither
            # counts as a failure nor hides what the previous attempts said.
            if not answer.unfinished or limit >= probe.timeout:
                failures += 1
                last, hung = (last, answer) if answer.unfinished else (answer, None)
                if retries is not None and failures >= retries:
                    return failed(f"the probe failed {failures} times")
        if clock() - started >= timeout:
            return failed(f"not healthy within {timeout:g}s")
        time.sleep(min(interval, max(0.0, timeout - (clock() - started))))


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one probe attempt found."""

    passed: bool
    exit_code: int | None = None
    output: str = ""
    #: Stopped before it answered: by the probe's own timeout, or by the gate's deadline.
    unfinished: bool = False
    #: Why the probe cannot run at all and what to change; the gate fails at once.
    broken: str = ""


def _verdict(
    head: str, probe: Probe, last: _Answer | None, hung: _Answer | None, attempts: int
) -> str:
    """``head`` with what the probes said: the last answer, else that they never finished."""
    if last is not None:
        said = _summary(probe, last)
        if hung is not None:
            later = f", later ones did not finish within {probe.timeout:g}s"
            return f"{head}; the last probe that finished {said}{later}"
        return f"{head}; last probe {said}"
    if hung is not None:
        return (
            f"{head}; the probe never finished within its {probe.timeout:g}s timeout: make it "
            "give up sooner on its own, or raise the HEALTHCHECK --timeout"
        )
    if attempts:
        return (
            f"{head}; the probe was still running when the time was up (raise rotate "
            "--timeout or agent.rotation.timeout if the application needs longer to answer)"
        )
    return head


def _summary(probe: Probe, answer: _Answer) -> str:
    """``exited 1: db not ready`` for a command, the first line of the answer otherwise."""
    lines = [line.strip() for line in answer.output.splitlines() if line.strip()]
    if probe.kind in ("healthcheck", "exec") and answer.exit_code is not None:
        tail = f": {lines[-1][:200]}" if lines else " with no output"
        return f"exited {answer.exit_code}{tail}"
    return f"said: {lines[0][:200]}" if lines else "failed with no output"


def _attempt(
    client: docker.DockerClient, view: ContainerView, probe: Probe, limit: float
) -> _Answer:
    if probe.kind in ("healthcheck", "exec"):
        answer = _bounded(lambda: _exec(client, view.id, probe.command), limit)
        return replace(answer, broken=_cannot_run(probe, answer))
    address = view.ip_address or "127.0.0.1"
    if probe.kind == "tcp":
        return _tcp(address, probe.port, limit)
    return _http(address, probe.port, probe.path, limit)


def _bounded(call: Callable[[], _Answer], limit: float) -> _Answer:
    """Run ``call`` in a thread; a hung exec counts as an unfinished attempt after ``limit``."""
    result: list[_Answer] = []
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
        return _Answer(False, None, _cap(failure[0]))
    return _Answer(False, None, f"the probe did not finish within {limit:.3g}s", unfinished=True)


def _exec(client: docker.DockerClient, container_id: str, command: tuple[str, ...]) -> _Answer:
    with docker_errors(f"running the health probe in {container_id[:12]}"):
        exec_id = client.api.exec_create(container_id, list(command))["Id"]
        raw = client.api.exec_start(exec_id)
        code = client.api.exec_inspect(exec_id).get("ExitCode")
    text = _cap(raw if isinstance(raw, bytes) else b"")
    return _Answer(code == 0, int(code) if code is not None else None, text)


def _cannot_run(probe: Probe, answer: _Answer) -> str:
    """Docker's reason and what to change, when the probe's process could not be started.

    Measured on Docker 20.10: ``exec_start`` answers ``OCI runtime exec failed: exec failed:
    unable to start container process: exec: "/bin/sh": stat /bin/sh: no such file or
    directory: unknown`` and the exec exits 126, within ~0.1 s; no API error is raised.
    """
    first = answer.output.strip().splitlines()[0] if answer.output.strip() else ""
    if answer.exit_code not in (126, 127) or not first.startswith(_EXEC_FAILED):
        return ""
    start = first.find("exec: ")
    why = first[start:] if start >= 0 else first
    why = why.removesuffix(": unknown")
    named = re.match(r'exec: "([^"]+)"', why)
    program = named.group(1) if named else ""
    label = probe.kind == "exec"
    where = "the dso.health.exec label" if label else "the HEALTHCHECK"
    instead = f"use {_OTHER_PROBES}" if label else f"set {_OTHER_PROBES}"
    if probe.shell and program == probe.shell[0]:
        form = (
            'write the dso.health.exec label as a JSON array (["/app", "--health"])'
            if label
            else 'write the HEALTHCHECK in exec form (HEALTHCHECK CMD ["/app", "--health"])'
        )
        advice = f"the image has no {program}: {form}, or {instead}"
    elif program and "not found in $PATH" in why:
        advice = f"the image has no {program} on its PATH: change {where}, or {instead}"
    elif program and "no such file or directory" in why:
        advice = (
            f"{program} (or the interpreter its #! line names) is not in the image: "
            f"change {where}, or {instead}"
        )
    else:
        advice = f"change {where} so that it can run in this image, or {instead}"
    return f"the probe cannot run in the container: {why}; {advice}"


def _tcp(address: str, port: int, limit: float) -> _Answer:
    try:
        with socket.create_connection((address, port), timeout=limit):
            return _Answer(True, 0)
    except OSError as exc:
        return _Answer(False, None, f"tcp {address}:{port}: {exc.strerror or exc}")


def _http(address: str, port: int, path: str, limit: float) -> _Answer:
    connection = http.client.HTTPConnection(address, port, timeout=limit)
    try:
        connection.request("GET", path, headers={"User-Agent": "dso-health"})
        response = connection.getresponse()
        body = response.read(OUTPUT_LIMIT)
    except (OSError, http.client.HTTPException) as exc:
        return _Answer(False, None, f"GET {address}:{port}{path}: {exc}")
    finally:
        connection.close()
    text = _cap(f"HTTP {response.status} {response.reason}\n".encode() + body)
    return _Answer(response.status < 400, response.status, text)


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
        raise UsageError(
            f"label {HEALTH_EXEC_LABEL}: not a JSON array of strings: {raw!r}"
        ) from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
        raise UsageError(f"label {HEALTH_EXEC_LABEL}: not a JSON array of strings: {raw!r}")
    return value


def _port(raw: str, label: str) -> int:
    try:
        port = int(raw.strip().lstrip(":"))
    except ValueError:
        raise UsageError(f"label {label}: {raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise UsageError(f"label {label}: {raw!r} is not a port number")
    return port
