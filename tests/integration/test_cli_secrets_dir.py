"""`docker dso up/down/validate` and an unsafe secrets directory (issue 9, items 2, 3 and 7).

Compose is faked as in test_cli_compose.py (project ``shop``: services web and worker with
``dsofile://`` secrets); bases live on /dev/shm, "a disk" is ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from kernel.injection.tmpfs import TMPFS_MAGIC, SecretsDir, filesystem_magic
from kernel.paths import local_layout
from kernel.secret_value import SecretValue
from kernel.vault import open_local
from tests.conftest import RunDso
from tests.integration import test_cli_compose

pytestmark = pytest.mark.integration

# The fake compose and the initialised dso of test_cli_compose.py.
calls = test_cli_compose.calls
dso = test_cli_compose.dso


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "on-disk"
    path.mkdir()
    assert filesystem_magic(path) != TMPFS_MAGIC
    return path


def test_up_refuses_a_shared_base_and_leaves_its_mode_alone(
    dso: RunDso, calls: dict[str, Any], shm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = shm / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("DSO_SECRETS_DIR", str(shared))
    result = dso("up", "-d")
    assert result.exit_code == 8, result.output
    assert f"refusing to keep secrets under {shared}: it is writable by others" in result.stderr
    assert "command" not in calls, "compose was not started"
    assert mode(shared) == 0o777 and os.listdir(shared) == []
    shared.chmod(0o1777)  # the same with the sticky bit, like /dev/shm itself
    result = dso("up", "-d")
    assert result.exit_code == 8 and "is sticky" in result.stderr
    assert mode(shared) == 0o1777 and os.listdir(shared) == []


def test_up_refuses_a_planted_project_symlink_and_writes_nothing_to_disk(
    dso: RunDso, calls: dict[str, Any], shm: Path, disk: Path, canary: str
) -> None:
    base = shm / "secrets"
    SecretsDir(base).prepare()
    (base / "shop").symlink_to(disk)
    result = dso("up", "-d")
    assert result.exit_code == 8, result.output
    assert f"{base / 'shop'}: it is a symlink" in result.stderr
    assert "(tmpfs)" not in result.stderr
    assert "command" not in calls, "compose was not started"
    assert files_under(disk) == []
    assert canary not in result.output


def test_up_refuses_a_planted_service_symlink_and_writes_nothing_to_disk(
    dso: RunDso, calls: dict[str, Any], shm: Path, disk: Path
) -> None:
    project = shm / "secrets" / "shop"
    SecretsDir(shm / "secrets").prepare()
    project.mkdir(mode=0o700)
    (project / "worker").symlink_to(disk)
    result = dso("up", "-d")
    assert result.exit_code == 8, result.output
    assert f"{project / 'worker'}: it is a symlink" in result.stderr
    assert "command" not in calls
    assert files_under(disk) == []


def test_down_says_what_it_removed(
    dso: RunDso, calls: dict[str, Any], shm: Path, disk: Path
) -> None:
    project = shm / "secrets" / "shop"
    assert dso("up", "-d").exit_code == 0
    result = dso("down")
    assert result.exit_code == 0, result.stderr
    assert f"removed the secret files of project shop ({project})" in result.stderr
    assert not project.exists()
    # Nothing left: nothing claimed.
    result = dso("down")
    assert result.exit_code == 0 and "removed" not in result.stderr
    # A symlink in the project's place: refused, neither it nor its target touched.
    (disk / "keep").write_text("someone's file")
    project.symlink_to(disk)
    result = dso("down")
    assert result.exit_code == 8
    assert f"refusing to remove {project}: it is a symlink" in result.stderr
    assert "nothing was removed" in result.stderr
    assert "removed the secret files" not in result.stderr
    assert project.is_symlink() and (disk / "keep").read_text() == "someone's file"


def test_validate_reports_the_secrets_directory_up_would_refuse(
    dso: RunDso, calls: dict[str, Any], shm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = shm / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("DSO_SECRETS_DIR", str(shared))
    message = f"refusing to keep secrets under {shared}: it is writable by others (mode 777)"
    result = dso("validate")
    assert result.exit_code == 1, result.output
    assert f"service web, worker: {message}" in result.stdout
    assert "all valid" not in result.stderr
    doc = json.loads(dso("validate", "--json").stdout)
    assert doc["valid"] is False
    (problem,) = doc["problems"]
    assert problem["problem"] == message and problem["error"] == "StorageError"
    files = {(r["service"], r["variable"]) for r in doc["references"] if not r["ok"]}
    assert files == {("web", "API_KEY_FILE"), ("worker", "TOKEN")}
    assert mode(shared) == 0o777 and os.listdir(shared) == []
    # The same message as up's refusal.
    assert message in dso("up", "-d").stderr
    # validate never creates the directory up would create.
    monkeypatch.setenv("DSO_SECRETS_DIR", str(shm / "new" / "secrets"))
    assert dso("validate").exit_code == 0
    assert not (shm / "new").exists()


def test_two_homes_with_the_same_project_keep_their_files_apart(
    dso: RunDso,
    calls: dict[str, Any],
    shm: Path,
    tmp_path: Path,
    canary: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DSO_SECRETS_DIR")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(shm))
    assert dso("up", "-d").exit_code == 0
    first = json.dumps(calls["model"]["services"]["web"]["volumes"])

    monkeypatch.setenv("DSO_HOME", str(tmp_path / "second-home"))
    assert dso("init").exit_code == 0
    vault = open_local(local_layout())
    for key in ("app/db_password", "app/api_key", "app/token"):
        vault.set(key, SecretValue("second-" + key))
    result = dso("up", "-d")
    assert result.exit_code == 0, result.stderr
    second = json.dumps(calls["model"]["services"]["web"]["volumes"])
    assert first != second

    bases = sorted((shm / "dso").glob("*/secrets"))
    assert len(bases) == 2
    tokens = sorted((base / "shop" / "worker" / "TOKEN").read_bytes() for base in bases)
    assert tokens == sorted([canary.encode() + b"-token", b"second-app/token"])
    # down in the second home removes its own files only.
    assert dso("down").exit_code == 0
    left = [base for base in bases if (base / "shop").exists()]
    assert len(left) == 1
    assert (left[0] / "shop" / "worker" / "TOKEN").read_bytes() == canary.encode() + b"-token"
