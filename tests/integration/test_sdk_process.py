"""The provider SDK and the fake providers as real child processes, driven over real pipes.

The client side here is a minimal blocking reader built on kernel.protocol; the real provider
host (supervision, restart, breaker) has its own tests. Every process started is killed and
reaped in a ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel.errors import ProtocolError
from kernel.protocol import (
    MAGIC_COOKIE_KEY,
    Capability,
    Changed,
    ErrorCode,
    FrameDecoder,
    GetResult,
    Handshake,
    Message,
    MessageWriter,
    Notification,
    Response,
    SecretRef,
    VersionsResult,
    configure_params,
    deadline_params,
    decode_message,
    list_params,
    parse_describe,
    parse_list_result,
    parse_ping_result,
    provider_environment,
    refs_params,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ECHO = ["-m", "tests.fakes.echo_provider"]
MISBEHAVING = ["-m", "tests.fakes.misbehaving_provider"]
SECRETS = {
    "db/password": "hunter2",
    "db/creds": {"fields": {"user": "admin", "pass": "pw"}, "version": "7"},
    "api/key": {"value": "k-123", "version": "v9"},
}


def child_env(**extra: str) -> dict[str, str]:
    env = provider_environment(os.environ, ["PYTHONPATH"])
    env.update(extra)
    return env


class Child:
    """A provider process with a frame reader on its stdout and stderr in a file."""

    def __init__(self, args: list[str], env: dict[str, str], stderr: Path) -> None:
        self.stderr_path = stderr
        self._stderr = stderr.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            cwd=REPO,
        )
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.writer = MessageWriter(self.proc.stdin.fileno())
        self.out_fd = self.proc.stdout.fileno()
        self.decoder = FrameDecoder()
        self.frames: list[bytes] = []
        self.next_id = 1

    def recv(self, timeout: float = 5.0) -> Message:
        """The next message; TimeoutError if none comes, EOFError if stdout closes."""
        end = time.monotonic() + timeout
        while not self.frames:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.out_fd], [], [], left)[0]:
                raise TimeoutError("no frame from the provider")
            data = os.read(self.out_fd, 1 << 18)
            if not data:
                self.decoder.close()
                raise EOFError("provider closed stdout")
            self.frames.extend(self.decoder.feed(data))
        return decode_message(self.frames.pop(0))

    def send(self, method: str, params: dict[str, Any]) -> int:
        msg_id = self.next_id
        self.next_id += 1
        self.writer.send([0, msg_id, method, params])
        return msg_id

    def call(self, method: str, params: dict[str, Any] | None = None) -> Response:
        msg_id = self.send(method, deadline_params(time.time() + 10) if params is None else params)
        response = self.recv()
        assert isinstance(response, Response)
        assert response.id == msg_id
        return response

    def handshake(self, offered: tuple[int, ...] = (1,)) -> Handshake:
        return Handshake.from_message(self.recv(), offered)

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(BrokenPipeError):
                    stream.close()
        self._stderr.close()


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    children: list[Child] = []

    def _spawn(args: list[str], env: dict[str, str] | None = None) -> Child:
        child = Child(
            args, child_env() if env is None else env, tmp_path / f"stderr-{len(children)}"
        )
        children.append(child)
        return child

    try:
        yield _spawn
    finally:
        for child in children:
            child.kill()


@pytest.fixture
def echo(spawn: Any) -> Child:
    child: Child = spawn(ECHO)
    handshake = child.handshake()
    assert handshake.name == "echo"
    response = child.call("configure", configure_params({"secrets": SECRETS}, time.time() + 10))
    assert response == Response(response.id, None, {})
    return child


def soon() -> float:
    return time.time() + 10


# -- the well-behaved provider -----------------------------------------------------------------


def test_handshake_announces_name_version_protocol_and_capabilities(spawn: Any) -> None:
    child = spawn(ECHO)
    handshake = child.handshake()
    assert (handshake.name, handshake.version, handshake.protocol) == ("echo", "1.0.0", 1)
    assert handshake.capabilities == set(Capability)
    assert handshake.core_version


def test_get_versions_list_and_ping(echo: Child) -> None:
    refs = [
        SecretRef("1", "db/password"),
        SecretRef("2", "db/creds", field="user"),
        SecretRef("3", "nope"),
        SecretRef("4", "api/key", version="v9"),
        SecretRef("5", "api/key", version="v1"),
    ]
    response = echo.call("get", refs_params(refs, soon()))
    result = GetResult.from_wire(response.result, [r.id for r in refs])
    assert result.values["1"].value == b"hunter2"
    assert result.values["2"].value == b"admin"
    assert result.values["2"].version == "7"
    assert result.values["4"].value == b"k-123"
    assert result.errors["3"].code == ErrorCode.NOT_FOUND
    assert result.errors["5"].code == ErrorCode.NOT_FOUND

    response = echo.call("versions", refs_params(refs[:3], soon()))
    versions = VersionsResult.from_wire(response.result, ["1", "2", "3"])
    assert versions.versions == {"1": result.values["1"].version, "2": "7"}
    assert versions.errors["3"].code == ErrorCode.NOT_FOUND

    assert parse_list_result(echo.call("list", list_params("db/", soon())).result) == [
        "db/creds",
        "db/password",
    ]
    assert len(parse_list_result(echo.call("list", list_params(None, soon())).result)) == 3
    assert abs(parse_ping_result(echo.call("ping").result) - time.time()) < 5


def test_thousands_of_pipelined_requests_are_all_answered_by_id(echo: Child) -> None:
    ref = [SecretRef("a", "db/password")]
    expected: dict[int, str] = {}
    wires = []
    for i in range(3000):
        method = "ping" if i % 3 == 0 else "get"
        msg_id = 10_000 + i
        params = deadline_params(soon()) if method == "ping" else refs_params(ref, soon())
        wires.append([0, msg_id, method, params])
        expected[msg_id] = method
    # Write from another thread while reading answers, as the host must: requests and answers
    # each exceed a pipe's 64 KiB, so a writer that never reads would deadlock with the provider.
    sender = threading.Thread(target=echo.writer.send_many, args=(wires,))
    sender.start()
    seen: dict[int, Response] = {}
    try:
        while len(seen) < len(expected):
            message = echo.recv()
            assert isinstance(message, Response)
            assert message.id not in seen
            seen[message.id] = message
    finally:
        sender.join(10)
    assert seen.keys() == expected.keys()
    for msg_id, method in expected.items():
        assert seen[msg_id].error is None
        if method == "get":
            assert seen[msg_id].result["values"]["a"]["value"] == b"hunter2"
        else:
            assert "time" in seen[msg_id].result


def test_a_stray_print_goes_to_stderr_and_never_corrupts_the_stream(echo: Child) -> None:
    for _ in range(5):
        response = echo.call("get", refs_params([SecretRef("1", "db/password")], soon()))
        assert response.error is None
    echo.call("shutdown")
    echo.proc.wait(5)
    assert "a stray print in get" in echo.stderr()


def test_logs_are_json_lines_on_stderr_and_carry_no_values(echo: Child) -> None:
    echo.call("get", refs_params([SecretRef("1", "db/password")], soon()))
    echo.call("shutdown")
    echo.proc.wait(5)
    lines = [line for line in echo.stderr().splitlines() if line.startswith("{")]
    assert lines
    for line in lines:
        doc = json.loads(line)
        assert {"time", "level", "logger", "message"} <= doc.keys()
    assert "hunter2" not in echo.stderr()


def test_a_request_whose_deadline_passed_is_answered_timeout(echo: Child) -> None:
    response = echo.call("get", refs_params([SecretRef("1", "db/password")], time.time() - 1))
    assert response.error is not None
    assert response.error.code == ErrorCode.TIMEOUT


def test_unknown_method_and_bad_params_are_invalid_request(echo: Child) -> None:
    response = echo.call("teleport")
    assert response.error is not None
    assert response.error.code == ErrorCode.INVALID_REQUEST
    assert "teleport" in response.error.message
    response = echo.call("get", {"refs": "all", "deadline": soon()})
    assert response.error is not None
    assert response.error.code == ErrorCode.INVALID_REQUEST
    response = echo.call("get", {"refs": []})
    assert response.error is not None
    assert "deadline" in response.error.message


def test_requests_before_configure_are_refused(spawn: Any) -> None:
    child = spawn(ECHO)
    child.handshake()
    assert child.call("ping").error is None
    response = child.call("get", refs_params([SecretRef("1", "x")], soon()))
    assert response.error is not None
    assert response.error.code == ErrorCode.INVALID_REQUEST
    assert "configure" in response.error.message


@pytest.mark.parametrize("code", list(ErrorCode), ids=str)
def test_per_reference_errors_carry_their_code(spawn: Any, code: ErrorCode) -> None:
    child = spawn(ECHO)
    child.handshake()
    settings = {"secrets": SECRETS, "errors": {"db/password": code.value}}
    assert child.call("configure", configure_params(settings, soon())).error is None
    refs = [SecretRef("1", "db/password"), SecretRef("2", "api/key")]
    result = GetResult.from_wire(child.call("get", refs_params(refs, soon())).result, ["1", "2"])
    assert result.errors["1"].code == code
    assert result.values["2"].value == b"k-123"


def test_an_unexpected_exception_is_internal_and_its_text_never_leaves(
    spawn: Any, canary: str
) -> None:
    child = spawn(ECHO)
    child.handshake()
    settings = {"secrets": SECRETS, "crash_message": f"token={canary}"}
    assert child.call("configure", configure_params(settings, soon())).error is None
    response = child.call("get", refs_params([SecretRef("1", "crash")], soon()))
    error = GetResult.from_wire(response.result, ["1"]).errors["1"]
    assert error.code == ErrorCode.INTERNAL
    assert canary not in error.message
    child.call("shutdown")
    child.proc.wait(5)
    assert "RuntimeError" in child.stderr()
    assert canary not in child.stderr()


def test_a_slow_get_does_not_block_ping(spawn: Any) -> None:
    child = spawn(ECHO)
    child.handshake()
    settings = {"secrets": SECRETS, "sleep": 1.0}
    assert child.call("configure", configure_params(settings, soon())).error is None
    get_id = child.send("get", refs_params([SecretRef("1", "db/password")], soon()))
    ping_id = child.send("ping", deadline_params(soon()))
    first = child.recv()
    assert isinstance(first, Response)
    assert first.id == ping_id, "ping must be answered while get sleeps"
    second = child.recv()
    assert isinstance(second, Response)
    assert second.id == get_id
    assert second.error is None


def test_watch_then_reconfigure_sends_changed(echo: Child) -> None:
    refs = [SecretRef("w1", "db/password"), SecretRef("w2", "api/key")]
    assert echo.call("watch", refs_params(refs, soon())).error is None
    changed = {**SECRETS, "db/password": "rotated"}
    msg_id = echo.send("configure", configure_params({"secrets": changed}, soon()))
    messages = [echo.recv(), echo.recv()]
    notes = [m for m in messages if isinstance(m, Notification)]
    answers = [m for m in messages if isinstance(m, Response)]
    assert [a.id for a in answers] == [msg_id]
    assert len(notes) == 1
    assert notes[0].method == "changed"
    assert Changed.from_wire(notes[0].params) == Changed(("w1",), ())


def test_shutdown_answers_then_exits_0_promptly(echo: Child) -> None:
    assert echo.call("shutdown").error is None
    assert echo.proc.wait(2) == 0


def test_end_of_stdin_exits_0(echo: Child) -> None:
    echo.close_stdin()
    assert echo.proc.wait(2) == 0


def test_sigterm_exits_promptly_even_during_a_slow_request(spawn: Any) -> None:
    child = spawn(ECHO)
    child.handshake()
    settings = {"secrets": SECRETS, "sleep": 30}
    assert child.call("configure", configure_params(settings, soon())).error is None
    child.send("get", refs_params([SecretRef("1", "db/password")], soon()))
    time.sleep(0.2)
    child.proc.send_signal(signal.SIGTERM)
    assert child.proc.wait(2) == 0


def test_garbage_from_the_kernel_makes_the_provider_exit_2(echo: Child) -> None:
    assert echo.proc.stdin is not None
    echo.proc.stdin.write(b"\x00\x00\x00\x02\xc1\xc1")
    echo.proc.stdin.flush()
    assert echo.proc.wait(2) == 2
    assert "broke the protocol" in echo.stderr()


def test_no_common_version_still_handshakes_so_the_kernel_can_say_why(spawn: Any) -> None:
    child = spawn(ECHO, child_env(DSO_PROVIDER_PROTOCOL_VERSIONS="2,3"))
    with pytest.raises(ProtocolError, match="chose protocol 1, but this dso offers 2,3"):
        child.handshake(offered=(2, 3))


def test_run_by_hand_without_the_cookie_explains_and_exits_1(spawn: Any) -> None:
    env = child_env()
    del env[MAGIC_COOKIE_KEY]
    child = spawn(ECHO, env)
    assert child.proc.wait(10) == 1
    assert child.proc.stdout is not None
    assert child.proc.stdout.read() == b""
    text = child.stderr()
    assert "not a program to run by hand" in text
    assert "docker dso providers list" in text


def test_describe_prints_json_without_the_cookie(spawn: Any) -> None:
    env = child_env()
    del env[MAGIC_COOKIE_KEY]
    child = spawn([*ECHO, "--describe"], env)
    assert child.proc.wait(10) == 0
    assert child.proc.stdout is not None
    doc = parse_describe(child.proc.stdout.read())
    assert doc["name"] == "echo"
    assert doc["protocol_versions"] == [1]
    assert set(doc["capabilities"]) == {"get", "versions", "list", "watch"}


# -- the misbehaving provider: each mode does what its name says -------------------------------


def fake(spawn: Any, mode: str, **extra: str) -> Child:
    child: Child = spawn(MISBEHAVING, child_env(DSO_FAKE_MODE=mode, **extra))
    return child


@pytest.mark.parametrize("cookie", ["not-the-cookie", ""])
def test_fake_bad_cookie(spawn: Any, cookie: str) -> None:
    child = fake(spawn, "bad-cookie", DSO_FAKE_COOKIE=cookie)
    with pytest.raises(ProtocolError, match="magic cookie"):
        child.handshake()


def test_fake_bad_version(spawn: Any) -> None:
    with pytest.raises(ProtocolError, match="chose protocol 99"):
        fake(spawn, "bad-version").handshake()


def test_fake_no_handshake(spawn: Any) -> None:
    child = fake(spawn, "no-handshake")
    with pytest.raises(TimeoutError):
        child.recv(timeout=0.5)
    assert child.proc.poll() is None


def test_fake_hang(spawn: Any) -> None:
    child = fake(spawn, "hang")
    child.handshake()
    child.send("ping", deadline_params(soon()))
    with pytest.raises(TimeoutError):
        child.recv(timeout=0.5)
    child.close_stdin()
    time.sleep(0.2)
    assert child.proc.poll() is None, "a hung provider does not exit on EOF"


def test_fake_crash_mid_request(spawn: Any) -> None:
    child = fake(spawn, "crash-mid-request")
    child.handshake()
    assert child.call("configure", configure_params({}, soon())).error is None
    child.send("get", refs_params([SecretRef("1", "x")], soon()))
    with pytest.raises(EOFError):
        child.recv()
    assert child.proc.wait(5) == 3


@pytest.mark.parametrize("at", ["start", "request"])
@pytest.mark.parametrize("mode", ["garbage-stdout", "oversized-frame"])
def test_fake_garbage_and_oversized_frames(spawn: Any, mode: str, at: str) -> None:
    child = fake(spawn, mode, DSO_FAKE_AT=at)
    if at == "request":
        child.handshake()
        assert child.call("configure", configure_params({}, soon())).error is None
        child.send("get", refs_params([SecretRef("1", "x")], soon()))
    with pytest.raises(ProtocolError, match="exceeds the maximum"):
        child.recv()


def test_fake_slow_shutdown(spawn: Any) -> None:
    child = fake(spawn, "slow-shutdown")
    child.handshake()
    assert child.call("ping").error is None
    child.send("shutdown", deadline_params(soon()))
    with pytest.raises(TimeoutError):
        child.recv(timeout=0.5)
    child.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert child.proc.poll() is None, "slow-shutdown ignores shutdown and SIGTERM"


def test_fake_stray_print(spawn: Any) -> None:
    child = fake(spawn, "stray-print")
    child.handshake()
    child.send("configure", configure_params({}, soon()))
    with pytest.raises(ProtocolError):
        child.recv()
