"""Fixtures shared by every test layer.

- ``dso_home``: an isolated local-mode root (``DSO_HOME``), ``HOME`` and working directory, so a
  test never reads or writes the real ``~/.dso``, ``/etc/dso`` or ``./dso.yaml``.
- ``run_dso``: runs the CLI in-process exactly as ``main()`` does (error handling, exit codes),
  capturing stdout and stderr separately.
- ``canary``: a unique secret value; tests that handle it assert it never shows up anywhere.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent

# `docker dso up -d` starts a detached local agent when none runs; tests that want one start it
# themselves (tests/integration/agent_support.py) and stop it. Fixtures that build an environment
# without DSO_* variables set DSO_NO_AGENT again.
os.environ["DSO_NO_AGENT"] = "1"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


RunDso = Callable[..., CliResult]


@pytest.fixture
def dso_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dso-home"
    user_home = tmp_path / "home"
    user_home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("DSO_HOME", str(home))
    monkeypatch.setenv("HOME", str(user_home))
    for var in (
        "DSO_CONFIG",
        "DSO_VAULT_PASSPHRASE",
        "DSO_LOG_LEVEL",
        "DSO_DEBUG",
        "JOURNAL_STREAM",
        "XDG_RUNTIME_DIR",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(work)
    # Never read the machine's /etc/dso/dso.yaml from a test.
    import kernel.config.loader

    monkeypatch.setattr(kernel.config.loader, "SYSTEM_CONFIG", tmp_path / "etc-dso" / "dso.yaml")
    return home


@pytest.fixture
def run_dso(dso_home: Path) -> RunDso:
    from kernel.cli.main import run

    def _run(
        *args: str, input: str | bytes | None = None, env: dict[str, str | None] | None = None
    ) -> CliResult:
        runner = CliRunner()
        # The CLI configures the "dso" logger (level, handler on its captured stderr, no
        # propagation); put it back so later tests in this worker still see dso log records.
        logger = logging.getLogger("dso")
        saved = (logger.level, logger.propagate, list(logger.handlers))
        try:
            with runner.isolation(input=input, env=env) as (out, err, _mixed):
                code = run(list(args))
        finally:
            logger.setLevel(saved[0])
            logger.propagate = saved[1]
            logger.handlers[:] = saved[2]
        return CliResult(code, out.getvalue().decode(), err.getvalue().decode())

    return _run


@pytest.fixture
def canary() -> str:
    """A value that must never appear in any output, log, argv or file outside the vault."""
    return "CANARY-" + secrets.token_hex(12)


@pytest.fixture(scope="session")
def test_label() -> Iterator[str]:
    """A per-session label value put on every Docker object integration tests create."""
    value = f"dso-test-{os.getpid()}-{secrets.token_hex(4)}"
    yield value


@pytest.fixture
def shm() -> Iterator[Path]:
    """A private directory on /dev/shm (a tmpfs), removed afterwards."""
    path = Path("/dev/shm") / f"dsotest-{secrets.token_hex(6)}"
    path.mkdir(mode=0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
