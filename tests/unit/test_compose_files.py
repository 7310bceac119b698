"""Which files and working directory compose uses; pointing problems at file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.compose.args import split_args
from kernel.compose.files import ProjectFiles, locate, project_files
from kernel.compose.inject import Project, file_owner, locate_problems, problems_error
from kernel.compose.scan import Problem
from kernel.errors import SecretNotFoundError, SecretReferenceError, VaultNotFoundError
from kernel.injection.atomic_dir import Owner

FIXTURES = Path(__file__).parent / "fixtures" / "compose"


def test_explicit_files_and_project_directory(tmp_path: Path) -> None:
    found = project_files(split_args(["-f", "a/x.yml", "-f", "/abs/y.yml"]), tmp_path, {})
    assert found.files == (tmp_path / "a/x.yml", Path("/abs/y.yml"))
    assert found.working_dir == tmp_path / "a"
    other = project_files(split_args(["-f", "x.yml", "--project-directory", "srv"]), tmp_path, {})
    assert other.working_dir == (tmp_path / "srv").resolve()


def test_compose_file_variable(tmp_path: Path) -> None:
    env = {"COMPOSE_FILE": "one/a.yml:b.yml"}
    found = project_files(split_args([]), tmp_path, env)
    assert found.files == (tmp_path / "one/a.yml", tmp_path / "b.yml")
    assert found.working_dir == tmp_path / "one"
    env = {"COMPOSE_FILE": "a.yml;b.yml", "COMPOSE_PATH_SEPARATOR": ";"}
    assert len(project_files(split_args([]), tmp_path, env).files) == 2


def test_discovery_walks_up_and_takes_the_override(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    (tmp_path / "compose.override.yml").write_text("services: {}\n")
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    found = project_files(split_args([]), deep, {})
    assert found.files == (tmp_path / "compose.yaml", tmp_path / "compose.override.yml")
    assert found.working_dir == tmp_path


def test_locate_finds_map_and_list_forms_last_file_first(tmp_path: Path) -> None:
    shop = FIXTURES / "shop" / "compose.yaml"
    assert locate([shop], "web", "DB_PASSWORD") == (shop, 7)
    assert locate([shop], "worker", "TOKEN") == (shop, 17)
    override = tmp_path / "override.yaml"
    override.write_text("services:\n  web:\n    environment:\n      DB_PASSWORD: dso://x/y\n")
    assert locate([shop, override], "web", "DB_PASSWORD") == (override, 4)
    assert locate([shop], "web", "FROM_ENV_FILE") is None
    assert locate([tmp_path / "missing.yaml"], "web", "X") is None


def project(cwd: Path) -> Project:
    shop = FIXTURES / "shop" / "compose.yaml"
    return Project(split_args([]), cwd, {}, {"name": "shop"}, ProjectFiles((shop,), shop.parent))


def test_problems_are_located_sorted_and_listed_once_per_shared_error() -> None:
    shared = VaultNotFoundError("no vault at /v", hint="docker dso init")
    problems = [
        Problem("worker", "TOKEN", "dsofile://app/token", shared),
        Problem("web", "DB_PASSWORD", "dso://app/db_password", shared),
        Problem(
            "web",
            "NOT_IN_FILE",
            "dso://app/x",
            SecretNotFoundError("dso://app/x: no secret named 'app/x'", hint="secret list"),
        ),
        Problem("web", "API_KEY_FILE", "dso://", SecretReferenceError("bad reference")),
    ]
    located = locate_problems(project(FIXTURES / "shop"), problems)
    assert [str(p) for p in located] == [
        "compose.yaml:7: service web, DB_PASSWORD: no vault at /v",
        "compose.yaml:8: service web, API_KEY_FILE: bad reference",
        "compose.yaml:17: service worker, TOKEN: no vault at /v",
        "compose.yaml: service web, NOT_IN_FILE: dso://app/x: no secret named 'app/x'",
    ]
    doc = located[0].to_json()
    assert doc["file"] == "compose.yaml" and doc["line"] == 7 and doc["exit_code"] == 4
    error = problems_error(project(FIXTURES / "shop"), located)
    assert isinstance(error, VaultNotFoundError)
    assert error.exit_code == 4
    assert str(error).splitlines() == [
        "3 problems with secret references in project shop:",
        "  no vault at /v",
        "    hint: docker dso init",
        "  compose.yaml:8: service web, API_KEY_FILE: bad reference",
        "  compose.yaml: service web, NOT_IN_FILE: dso://app/x: no secret named 'app/x'",
        "    hint: secret list",
    ]
    assert shared.message == "no vault at /v", "the original error is not modified"


def test_a_single_problem_keeps_its_hint() -> None:
    problem = Problem("web", "DB_PASSWORD", "dso://app/x", SecretNotFoundError("gone", hint="h"))
    located = locate_problems(project(Path("/elsewhere")), [problem])
    error = problems_error(project(Path("/elsewhere")), located)
    assert (
        str(error) == f"{FIXTURES}/shop/compose.yaml:7: service web, DB_PASSWORD: gone\n  hint: h"
    )


def test_an_unprivileged_dso_keeps_files_meant_for_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setattr("os.getegid", lambda: 100)
    assert file_owner(Owner(0, 0)) == Owner(1000, 100)
    assert file_owner(Owner(1001, 1001)) == Owner(1001, 1001)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert file_owner(Owner(0, 0)) == Owner(0, 0)
