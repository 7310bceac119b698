"""Running ``docker compose`` and ``docker``: the only place they are spawned.

Secret values leave dso here and only here for compose: as the environment of the one
``docker compose … -f - <command>`` process that interpolates them (:func:`run_with_model`).
They are never in argv (``ps`` shows argv to every user) and never in a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from kernel.compose.args import ComposeArgs
from kernel.compose.plugin import compose_command
from kernel.errors import ComposeError, DockerUnavailableError
from kernel.labels import COMPOSE_PROJECT_LABEL
from kernel.secret_value import SecretValue

DOCKER = "docker"
#: How long reading the model may take (compose may fetch remote includes).
CONFIG_TIMEOUT = 120.0
_LOGRUS = re.compile(r'^time="[^"]*" level=(\w+) msg="((?:[^"\\]|\\.)*)"\s*$')


class PendingModel:
    """``docker compose <global flags> config --format json``, started; :meth:`result` waits.

    Started early, it runs while dso imports and loads its own configuration.
    """

    def __init__(self, args: ComposeArgs, *, cwd: Path, env: Mapping[str, str]) -> None:
        compose, extra = compose_command(env)
        command = [*compose, *args.global_flags, "config", "--format", "json"]
        try:
            self._process = subprocess.Popen(
                command,
                cwd=cwd,
                env={**env, **extra},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except FileNotFoundError:
            raise _no_docker() from None

    def cancel(self) -> None:
        """Stop and reap the process if :meth:`result` was never called (an earlier error)."""
        if self._process.returncode is None:
            self._process.kill()
            self._process.communicate()

    def result(self) -> tuple[dict[str, Any], list[str]]:
        """The model and compose's warnings; :class:`ComposeError` when compose rejects it."""
        try:
            stdout, stderr = self._process.communicate(timeout=CONFIG_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.communicate()
            raise DockerUnavailableError(
                f"docker compose config did not answer in {CONFIG_TIMEOUT:g} s"
            ) from None
        messages = compose_messages(stderr.decode(errors="replace"))
        if self._process.returncode != 0:
            _check_compose_installed(messages)
            text = "\n  ".join(messages) or f"exit status {self._process.returncode}"
            raise ComposeError(
                f"docker compose cannot read the project: {text}",
                hint="fix the compose file; `docker compose config` shows the same message",
            )
        try:
            model = json.loads(stdout)
        except ValueError:
            raise ComposeError("docker compose config did not print a JSON document") from None
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            raise ComposeError("docker compose config printed no project name")
        return model, messages


def read_model(
    args: ComposeArgs, *, cwd: Path, env: Mapping[str, str]
) -> tuple[dict[str, Any], list[str]]:
    """The project's model as compose reads it, and compose's warnings (see PendingModel)."""
    return PendingModel(args, cwd=cwd, env=env).result()


def compose_messages(stderr: str) -> list[str]:
    """Compose's stderr as messages: ``time=… level=warning msg="…"`` lines reduced to the text."""
    messages = []
    for line in stderr.splitlines():
        match = _LOGRUS.match(line)
        if match:
            text = re.sub(r"\\(.)", r"\1", match.group(2))
            messages.append(text if match.group(1) != "warning" else f"warning: {text}")
        elif line.strip():
            messages.append(line.rstrip())
    return messages


def _check_compose_installed(messages: Sequence[str]) -> None:
    if any("'compose' is not a docker command" in m or "unknown command" in m for m in messages):
        raise DockerUnavailableError(
            "Docker Compose v2 is not installed (`docker compose` is not a docker command)",
            hint="install the docker-compose-plugin package, or the docker-compose binary into "
            "~/.docker/cli-plugins/",
        )


def run_with_model(
    project: str,
    working_dir: Path,
    args: ComposeArgs,
    command: Sequence[str],
    model: Mapping[str, Any],
    secret_env: Mapping[str, SecretValue],
    *,
    cwd: Path,
    env: Mapping[str, str],
) -> int:
    """Run ``docker compose -p P --project-directory D <flags> -f - <command>``; its exit code.

    The model goes to compose's stdin; ``secret_env`` (placeholder → value) joins the process
    environment. Standard output and error are the user's terminal.
    """
    argv, child_env = _model_argv(project, working_dir, args, command, env)
    _add_secrets(child_env, secret_env)
    data = json.dumps(model).encode()
    try:
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, cwd=cwd, env=child_env)
    except FileNotFoundError:
        raise _no_docker() from None
    finally:
        child_env.clear()
    assert process.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        process.stdin.write(data)
    with contextlib.suppress(BrokenPipeError):
        process.stdin.close()
    return wait(process)


def service_hash(
    project: str,
    working_dir: Path,
    args: ComposeArgs,
    model: Mapping[str, Any],
    secret_env: Mapping[str, SecretValue],
    service: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
) -> str:
    """The configuration hash compose gives ``service`` of ``model`` (``config --hash``).

    The same call as :func:`run_with_model` with ``config --hash`` instead of ``up``, so the
    hash is the one ``up`` would compare with a container's ``com.docker.compose.config-hash``
    label. ``secret_env`` joins the process environment only, as for ``up``.
    """
    argv, child_env = _model_argv(project, working_dir, args, ("config", f"--hash={service}"), env)
    _add_secrets(child_env, secret_env)
    try:
        done = subprocess.run(
            argv,
            input=json.dumps(model).encode(),
            cwd=cwd,
            env=child_env,
            capture_output=True,
            timeout=CONFIG_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise _no_docker() from None
    except subprocess.TimeoutExpired:
        raise DockerUnavailableError(
            f"docker compose config --hash did not answer in {CONFIG_TIMEOUT:g} s"
        ) from None
    finally:
        child_env.clear()
    for line in done.stdout.decode(errors="replace").splitlines():
        name, _, digest = line.strip().partition(" ")
        if name == service and digest:
            return digest
    # Compose's own message is not repeated: it could quote an interpolated (secret) value.
    raise ComposeError(
        f"docker compose config --hash={service} failed (exit status {done.returncode})",
        hint="`docker compose config` shows what compose objects to",
    )


def _model_argv(
    project: str,
    working_dir: Path,
    args: ComposeArgs,
    command: Sequence[str],
    env: Mapping[str, str],
) -> tuple[list[str], dict[str, str]]:
    """``docker compose`` reading the model from stdin, with the user's global flags; and its
    environment (``env``, plus what the docker CLI gives a plugin when compose runs directly)."""
    compose, extra = compose_command(env)
    argv = [
        *compose,
        f"--project-name={project}",
        f"--project-directory={working_dir}",
        *args.shared_flags,
        "--file=-",
        *command,
    ]
    return argv, {**env, **extra}


def _add_secrets(child_env: dict[str, str], secret_env: Mapping[str, SecretValue]) -> None:
    """compose's environment gets the secret values it interpolates. The one place env values
    leave dso; callers clear the dict once the process has it."""
    for name, value in secret_env.items():
        child_env[name] = value.reveal_text()


def run_plain(
    args: ComposeArgs, command: Sequence[str], *, cwd: Path, env: Mapping[str, str]
) -> int:
    """``docker compose <global flags> <command>`` with the user's terminal; its exit code."""
    compose, extra = compose_command(env)
    try:
        process = subprocess.Popen(
            [*compose, *args.global_flags, *command], cwd=cwd, env={**env, **extra}
        )
    except FileNotFoundError:
        raise _no_docker() from None
    return wait(process)


def wait(process: subprocess.Popen[bytes]) -> int:
    """Wait for ``process``; Ctrl-C and SIGTERM are its to handle (compose stops containers)."""
    with _forwarding_signals(process):
        while True:
            try:
                return process.wait()
            except KeyboardInterrupt:  # pragma: no cover - only without our handler
                continue


@contextlib.contextmanager
def _forwarding_signals(process: subprocess.Popen[bytes]) -> Iterator[None]:
    def forward(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT and _in_terminal_foreground():
            return  # Ctrl-C: the terminal sent SIGINT to compose too; twice would force-kill
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)

    saved = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            saved[signum] = signal.signal(signum, forward)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def _in_terminal_foreground() -> bool:
    """True when our process group owns the terminal (so a Ctrl-C reached the whole group)."""
    for fd in (0, 1, 2):
        try:
            return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


def compose_projects(env: Mapping[str, str]) -> set[str]:
    """Names of the compose projects that have containers (running or not)."""
    done = _run(
        [
            DOCKER,
            "ps",
            "--all",
            f"--filter=label={COMPOSE_PROJECT_LABEL}",
            "--format={{.Label " + json.dumps(COMPOSE_PROJECT_LABEL) + "}}",
        ],
        cwd=None,
        env=env,
        timeout=30,
    )
    if done.returncode != 0:
        raise DockerUnavailableError(
            "docker ps failed: " + done.stderr.decode(errors="replace").strip()
        )
    return {line for line in done.stdout.decode().splitlines() if line}


def image_user(image: str, env: Mapping[str, str]) -> str | None:
    """The ``USER`` an image runs as ("" for root by default); None if it is not present."""
    done = _run(
        [DOCKER, "image", "inspect", "--format={{.Config.User}}", "--", image],
        cwd=None,
        env=env,
        timeout=30,
    )
    if done.returncode != 0:
        return None
    return done.stdout.decode().strip()


def _run(
    argv: Sequence[str], *, cwd: Path | None, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            list(argv), cwd=cwd, env=dict(env), capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise _no_docker() from None
    except subprocess.TimeoutExpired:
        raise DockerUnavailableError(
            f"{' '.join(argv[:3])} did not answer in {timeout:g} s"
        ) from None


def _no_docker() -> DockerUnavailableError:
    return DockerUnavailableError(
        "the docker CLI is not installed (no `docker` on PATH)",
        hint="install Docker and Docker Compose v2",
    )
