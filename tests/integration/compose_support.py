"""A throwaway compose project for integration tests, and the canary checks they share.

Every project gets a unique name (``dsotest<hex>``), its own DSO_HOME and its own secrets
directory on /dev/shm; teardown runs ``docker compose -p <name> down -v --remove-orphans`` and
removes what it wrote. Nothing else on the daemon is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

DSO = str(Path(sys.executable).parent / "dso")
IMAGE = "dso-test/busybox:1"


@dataclass
class ComposeProject:
    name: str
    dir: Path
    env: dict[str, str]
    secrets_base: Path
    #: Everything any dso command printed, for the canary checks.
    outputs: list[str] = field(default_factory=list)

    def write(self, filename: str, text: str) -> Path:
        path = self.dir / filename
        path.write_text(textwrap.dedent(text).replace("PROJECT", self.name))
        return path

    def dso(
        self,
        *args: str,
        ok: bool = True,
        stdin: str | None = None,
        timeout: float = 120,
        env: dict[str, str] | None = None,
    ):
        done = subprocess.run(
            [DSO, *args],
            input=stdin,
            cwd=self.dir,
            env=self.env if env is None else env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.outputs += [done.stdout, done.stderr]
        if ok:
            assert done.returncode == 0, f"dso {' '.join(args)}: {done.stderr}"
        return done

    def set_secret(self, name: str, value: str) -> None:
        self.dso("secret", "set", name, stdin=value)

    def container(self, service: str) -> str:
        done = docker(
            "ps",
            "-aq",
            f"--filter=label=com.docker.compose.project={self.name}",
            f"--filter=label=com.docker.compose.service={service}",
        )
        ids = done.stdout.split()
        assert len(ids) == 1, f"{service}: {ids}"
        return ids[0]

    def inspect(self, service: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(docker("inspect", self.container(service)).stdout)[0]
        return doc

    def exec(self, service: str, *command: str) -> str:
        done = docker("exec", self.container(service), *command)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def assert_no_output_contains(self, *canaries: str) -> None:
        for text in self.outputs:
            for canary in canaries:
                assert canary not in text


def docker(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[ComposeProject]:
    name = "dsotest" + secrets.token_hex(5)
    shm = Path("/dev/shm") / f"dsotest-{secrets.token_hex(5)}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DSO_", "COMPOSE_"))}
    env.pop("XDG_RUNTIME_DIR", None)
    env.update(
        DSO_HOME=str(tmp_path / "dso-home"),
        DSO_NO_AGENT="1",  # tests that want an agent start it (agent_support.py)
        DSO_SECRETS_DIR=str(shm / "secrets"),
        COMPOSE_PROJECT_NAME=name,
    )
    workdir = tmp_path / "app"
    workdir.mkdir()
    created = ComposeProject(name, workdir, env, shm / "secrets")
    created.dso("init")
    try:
        yield created
    finally:
        remove_project(name)
        shutil.rmtree(shm, ignore_errors=True)


def remove_project(name: str) -> None:
    """``docker compose down`` of the project, then whatever still carries its label: a down
    that times out on a loaded machine must not leave the test's containers behind."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        docker(
            "compose", "-p", name, "down", "-v", "--remove-orphans", "--timeout", "1", timeout=300
        )
    label = f"label=com.docker.compose.project={name}"
    containers = docker("ps", "-aq", f"--filter={label}").stdout.split()
    if containers:
        docker("rm", "-f", "-v", *containers)
    networks = docker("network", "ls", "-q", f"--filter={label}").stdout.split()
    if networks:
        docker("network", "rm", *networks)


def host_files_containing(root: Path, needle: bytes) -> list[Path]:
    """Regular files under ``root`` that contain ``needle`` (symlinks not followed)."""
    found = []
    for directory, _dirs, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            try:
                if path.is_symlink() or not path.is_file():
                    continue
                if needle in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


class ArgvWatcher:
    """Samples /proc/*/cmdline of every process in a thread until stopped."""

    def __init__(self, *needles: str) -> None:
        self.needles = [n.encode() for n in needles]
        self.hits: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ArgvWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples += 1
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    argv = Path("/proc", pid, "cmdline").read_bytes()
                except OSError:
                    continue
                if any(needle in argv for needle in self.needles):
                    self.hits.append(argv.replace(b"\0", b" ").decode(errors="replace"))
