"""Building blocks for the doctor's unit tests: a local dso home as ``docker dso init`` makes it
(in a short /tmp directory: unix socket paths are limited to 108 bytes), a Context on it with
every outside input faked, and a fake Docker client for the container listings."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from kernel.doctor import Completed, Context, Level
from kernel.doctor.model import Check, Status
from kernel.doctor.runner import run_one
from kernel.paths import Layout, local_layout

CONFIG = "version: 1\ndefault_provider: local\nproviders:\n  local:\n    type: local\n"


@pytest.fixture
def home() -> Iterator[Layout]:
    root = Path(tempfile.mkdtemp(prefix="dsodoc-", dir="/tmp"))
    try:
        layout = local_layout(root / "h")
        for directory in layout.directories():
            directory.mkdir(mode=0o700, exist_ok=True)
        layout.vault_key.write_bytes(b"k" * 32)
        layout.vault_key.chmod(0o600)
        layout.config.write_text(CONFIG)
        layout.config.chmod(0o600)
        yield layout
    finally:
        shutil.rmtree(root, ignore_errors=True)


class FakeRunner:
    """Answers commands from a table: argv prefix → Completed (or an exception to raise)."""

    def __init__(self, answers: dict[tuple[str, ...], Completed | BaseException]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> Completed:
        self.calls.append(tuple(argv))
        for prefix, answer in self.answers.items():
            if tuple(argv[: len(prefix)]) == prefix:
                if isinstance(answer, BaseException):
                    raise answer
                return answer
        raise FileNotFoundError(argv[0])


class FakeApi:
    def __init__(self, containers: list[dict[str, Any]]) -> None:
        self.listed = containers

    def containers(self, all: bool = False, filters: Any = None) -> list[dict[str, Any]]:
        name = (filters or {}).get("name")
        return [c for c in self.listed if name is None or any(name in n for n in c["Names"])]


class FakeDocker:
    """What :func:`kernel.containers.listing.list_containers` reads of a Docker client."""

    def __init__(self, containers: list[dict[str, Any]]) -> None:
        self.api = FakeApi(containers)


def container(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "Id": name.encode().hex().ljust(64, "0")[:64],
        "Names": [f"/{name}"],
        "Labels": labels or {},
    }


def make_context(layout: Layout, **overrides: Any) -> Context:
    """A Context on ``layout`` that reads nothing outside it unless told to."""
    docker = overrides.pop("docker", None)
    settings: dict[str, Any] = {
        "level": Level.BASIC,
        "config_candidates": [layout.config],
        "environ": {"DSO_SECRETS_DIR": f"/dev/shm/{layout.root.parent.name}/secrets"},
        "run": FakeRunner({}),
        "systemd_dir": layout.root / "no-systemd",
        "daemon_version": lambda: (
            "unix:///fake.sock",
            {"Version": "20.10.24", "ApiVersion": "1.41"},
        ),
    }
    if docker is not None:
        settings["connect"] = lambda: docker
    settings.update(overrides)
    return Context(layout, **settings)


def check(ctx: Context, check_id: str) -> tuple[Status, str, str, str]:
    """(status, finding, detail, fix) of one check run the way the runner runs it."""
    from kernel.doctor import CHECKS

    found: Check = next(c for c in CHECKS if c.id == check_id)
    result = run_one(ctx, found)
    return result.status, result.finding, result.detail, result.fix


def chmod(path: Path, mode: int) -> None:
    os.chmod(path, mode)
