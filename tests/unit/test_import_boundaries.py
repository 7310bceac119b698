"""Layering rules that keep the kernel small (DESIGN.md §1, STYLE.md §2-3).

- only kernel/cli imports click or rich;
- kernel/protocol is stdlib + msgpack (+ kernel.errors), because providers import it;
- the kernel never imports a provider SDK (hvac, boto3, botocore, azure);
- no module is named after the stdlib or a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KERNEL = ROOT / "kernel"


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def kernel_modules() -> list[Path]:
    return sorted(KERNEL.rglob("*.py"))


@pytest.mark.parametrize("path", kernel_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_layering(path: Path) -> None:
    rel = path.relative_to(ROOT)
    imports = imported_roots(path)
    tops = {name.split(".")[0] for name in imports}
    assert not tops & {"hvac", "boto3", "botocore", "azure"}, "provider SDKs stay in providers/"
    if rel.parts[:2] != ("kernel", "cli"):
        assert not tops & {"click", "rich"}, f"{rel}: only kernel/cli may import click/rich"
    if rel.parts[:2] == ("kernel", "protocol"):
        kernel_imports = {n for n in imports if n.split(".")[0] == "kernel"}
        assert kernel_imports <= {"kernel", "kernel.errors"} | {
            n for n in kernel_imports if n.startswith("kernel.protocol")
        }, f"{rel}: kernel/protocol may only import kernel.errors from the kernel"
        assert not tops & {"docker", "yaml", "pluggy", "cryptography"}


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


#: What a provider may use of the kernel: the protocol and the error tree; the local provider
#: also the vault format it serves (and the layout that locates it).
PROVIDER_KERNEL_IMPORTS = {"kernel", "kernel.errors"}
LOCAL_PROVIDER_KERNEL_IMPORTS = {"kernel.vault", "kernel.paths"}


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "providers").rglob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_providers_use_only_the_protocol_of_the_kernel(path: Path) -> None:
    rel = path.relative_to(ROOT)
    allowed = set(PROVIDER_KERNEL_IMPORTS)
    if rel.parts[:2] == ("providers", "local"):
        allowed |= LOCAL_PROVIDER_KERNEL_IMPORTS
    for name in imported_roots(path):
        if name.split(".")[0] != "kernel" or name.startswith("kernel.protocol"):
            continue
        assert name in allowed, f"{rel} imports {name}: providers talk to dso over the protocol"
