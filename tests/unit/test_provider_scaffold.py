"""kernel/provider_scaffold: what ``docker dso providers new`` writes, without running it.

tests/integration/test_cli_providers_new.py runs the generated project (the conformance kit
and its own pytest tests).
"""

from __future__ import annotations

import ast
import json
import stat
import tomllib
from pathlib import Path

import pytest

from kernel.errors import UsageError
from kernel.provider_scaffold import module_name, scaffold
from kernel.provider_scaffold.scaffold import SEED, TEMPLATES

ROOT = Path(__file__).resolve().parents[2]


def test_every_template_is_package_data_and_frozen_with_dso() -> None:
    directory = ROOT / "kernel" / "provider_scaffold" / "templates"
    assert sorted(p.name for p in directory.iterdir()) == sorted(t[0] for t in TEMPLATES)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]["kernel.provider_scaffold"]
    assert data == ["templates/*.tmpl"]
    spec = (ROOT / "build" / "pyinstaller" / "dso.spec").read_text()
    assert (
        '"kernel/provider_scaffold/templates/*.tmpl", "kernel/provider_scaffold/templates"' in spec
    )


def test_the_project_layout(tmp_path: Path) -> None:
    project = scaffold("my-store", tmp_path / "p")
    assert project.module == "dso_provider_my_store" == module_name("my-store")
    files = set(project.files)
    assert {
        "dso-provider-my-store",
        "pyproject.toml",
        "Makefile",
        "README.md",
        "build/dso-provider-my-store.spec",
        "src/dso_provider_my_store/provider.py",
        "src/dso_provider_my_store/__main__.py",
        "tests/test_conformance.py",
        "tests/test_provider.py",
        "conformance/fixture.json",
    } <= files
    assert {
        p.relative_to(project.directory).as_posix()
        for p in project.directory.rglob("*")
        if p.is_file()
    } == files
    assert stat.S_IMODE(project.launcher.stat().st_mode) == 0o755
    assert stat.S_IMODE(project.directory.stat().st_mode) == 0o755
    for path in project.directory.rglob("*"):
        assert "{{" not in path.name
        if path.is_file():
            assert "{{" not in path.read_text(), path
    for path in project.directory.rglob("*.py"):
        ast.parse(path.read_text(), str(path))
    spec = (project.directory / "build" / "dso-provider-my-store.spec").read_text()
    ast.parse(spec)
    assert 'name="dso-provider-my-store"' in spec and "noarchive=True" in spec
    provider = (project.directory / "src/dso_provider_my_store/provider.py").read_text()
    assert "class MyStoreProvider(Provider):" in provider and 'name = "my-store"' in provider
    meta = tomllib.loads((project.directory / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "dso-provider-my-store"


def test_the_fixture_names_the_seeded_secrets(tmp_path: Path) -> None:
    project = scaffold("files", tmp_path / "p")
    fixture = json.loads((project.directory / "conformance" / "fixture.json").read_text())
    seeded = project.directory / fixture["settings"]["directory"]
    for secret in fixture["secrets"]:
        raw = (seeded / secret["path"]).read_bytes()
        assert raw == SEED[secret["path"]]
        if "field" not in secret:
            assert raw == secret["value"].encode()
        else:
            assert str(json.loads(raw)[secret["field"]]) == secret["value"]
    assert not (seeded / fixture["missing"]).exists()


@pytest.mark.parametrize("name", ["", "Files", "1files", "files/x", "a" * 64, "dso provider"])
def test_a_bad_name_is_refused_before_anything_is_written(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="is not a provider name"):
        scaffold(name, tmp_path / "p")
    assert list(tmp_path.iterdir()) == []


def test_an_existing_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    with pytest.raises(UsageError, match="already exists; nothing was written"):
        scaffold("files", tmp_path / "p")
    assert list((tmp_path / "p").iterdir()) == []
