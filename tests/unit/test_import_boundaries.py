"""The architecture of docs/architecture.md, as far as import-linter cannot check it.

The layer table is enforced by the import-linter contracts in ``pyproject.toml``
(``[tool.importlinter]``, run by ``make check``); :func:`test_the_architecture_contracts_hold`
runs them here too, so a wrong-way import also fails the unit tests. import-linter sees modules
importing modules; what it cannot see is checked below:

- the Docker SDK outside ``kernel/containers`` only under ``if TYPE_CHECKING:`` (the contract
  has to let those annotation imports through), and no Docker API call (``client.api``) there;
- the contracts that stand for an allow-list ("stdlib + msgpack only") name every third-party
  dependency the project declares;
- no module is named after the stdlib or a dependency.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ROOT / "kernel"
CONTAINERS = KERNEL / "containers"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

#: Modules outside kernel/containers that call the Docker API anyway (path → why).
DOCKER_CALL_EXCEPTIONS: dict[str, str] = {}


def test_the_architecture_contracts_hold() -> None:
    # In a child process: import-linter's in-process run reconfigures logging, which broke the
    # log assertions of tests that ran after it in the same worker.
    done = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def kernel_modules_outside_containers() -> list[Path]:
    return sorted(p for p in KERNEL.rglob("*.py") if CONTAINERS not in p.parents)


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.body:
                inside.update(id(n) for n in ast.walk(statement))
    return inside


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _imports(tree: ast.Module) -> Iterator[tuple[ast.stmt, str, list[str]]]:
    """(node, module, names) for every absolute import of ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node, node.module, [alias.name for alias in node.names]


@pytest.mark.parametrize(
    "path", kernel_modules_outside_containers(), ids=lambda p: str(p.relative_to(ROOT))
)
def test_the_docker_sdk_is_used_only_in_kernel_containers(path: Path) -> None:
    rel = path.relative_to(ROOT)
    tree = ast.parse(path.read_text(), filename=str(path))
    annotations_only = _type_checking_nodes(tree)
    for node, module, names in _imports(tree):
        if module.split(".")[0] == "docker":
            assert id(node) in annotations_only, (
                f"{rel}:{node.lineno} imports {module} at run time: Docker calls belong in "
                "kernel/containers (import it under `if TYPE_CHECKING:` for annotations)"
            )
        if str(rel) in DOCKER_CALL_EXCEPTIONS:
            continue
        if module == "kernel.containers.client":
            assert not {"docker_errors", "translate"} & set(names), (
                f"{rel}:{node.lineno}: Docker errors are translated inside kernel/containers, "
                "around the calls, which belong there"
            )
    if str(rel) in DOCKER_CALL_EXCEPTIONS:
        return
    for node in ast.walk(tree):
        assert not (isinstance(node, ast.Attribute) and node.attr == "api"), (
            f"{rel}:{node.lineno} calls the Docker API (client.api): move the call into a "
            "function of kernel/containers"
        )


def _contract(contract_id: str) -> dict[str, Any]:
    contracts = PYPROJECT["tool"]["importlinter"]["contracts"]
    (found,) = [c for c in contracts if c.get("id") == contract_id]
    return dict(found)


#: Import name of a distribution whose name differs from it.
IMPORT_NAMES = {
    "pyyaml": "yaml",
    "azure-keyvault-secrets": "azure",
    "azure-identity": "azure",
    "pyinstaller": "PyInstaller",
}


def _import_names(requirements: list[str]) -> set[str]:
    dists = {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements}
    return {IMPORT_NAMES.get(d, d) for d in dists}


def test_the_protocol_contract_forbids_every_dependency_but_msgpack() -> None:
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    declared = _import_names(
        [*project["dependencies"], *extras["vault"], *extras["aws"], *extras["azure"]]
    )
    declared |= _import_names(extras["build"])
    forbidden = set(_contract("protocol")["forbidden_modules"])
    assert declared - {"msgpack"} <= forbidden, "kernel.protocol is stdlib + msgpack only"
    assert {"kernel.*", "providers"} <= forbidden


def test_the_kernel_contract_forbids_every_provider_sdk() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    sdks = _import_names([*extras["vault"], *extras["aws"], *extras["azure"]])
    assert sdks <= set(_contract("provider-sdks")["forbidden_modules"])


FORBIDDEN_MODULE_NAMES = {
    "logging",
    "secrets",
    "docker",
    "yaml",
    "json",
    "typing",
    "types",
    "click",
    "pluggy",
    "msgpack",
    "socket",
    "signal",
    "select",
}


def test_no_module_shadows_stdlib_or_a_dependency() -> None:
    for path in [*KERNEL.rglob("*.py"), *(ROOT / "providers").rglob("*.py")]:
        assert path.stem not in FORBIDDEN_MODULE_NAMES, path
