"""Fill the provider templates into a new project directory, all or nothing.

The project (``dso-provider-<name>/``) holds the provider module and its ``__main__`` under
``src/dso_provider_<name>/``, a launcher ``dso-provider-<name>`` that runs it from source, a
``pyproject.toml``, a ``Makefile`` (test, conformance, build, dist, install), a PyInstaller spec,
a conformance fixture with the secrets it serves, and two pytest modules: the provider's own
logic, and dso's conformance kit against the launcher. As generated the provider serves a
directory of files, so the kit passes before its author changes anything.

The files are written into a temporary sibling directory that is renamed into place at the end:
an existing directory is never overwritten, and a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kernel import __version__
from kernel.errors import StorageError, UsageError
from kernel.protocol import EXECUTABLE_PREFIX
from kernel.protocol.handshake import NAME_PATTERN

#: template file → path in the project (placeholders allowed), and whether it is executable.
TEMPLATES: tuple[tuple[str, str, bool], ...] = (
    ("provider.py.tmpl", "src/{{module}}/provider.py", False),
    ("__init__.py.tmpl", "src/{{module}}/__init__.py", False),
    ("__main__.py.tmpl", "src/{{module}}/__main__.py", False),
    ("launcher.sh.tmpl", "dso-provider-{{name}}", True),
    ("pyproject.toml.tmpl", "pyproject.toml", False),
    ("Makefile.tmpl", "Makefile", False),
    ("README.md.tmpl", "README.md", False),
    ("spec.tmpl", "build/dso-provider-{{name}}.spec", False),
    ("test_provider.py.tmpl", "tests/test_provider.py", False),
    ("test_conformance.py.tmpl", "tests/test_conformance.py", False),
)

#: The secrets the generated provider serves to the conformance kit (test values only).
SEED: dict[str, bytes] = {
    "app/db_password": b"conformance-db-password-0c5e",
    "app/config": b'{"user": "app", "port": 5432}',
}
#: Where the seed lives in the project, relative to it (the kit runs from the project).
SEED_DIR = "conformance/secrets"
#: Modes of the project: a source tree like any other (mkdtemp would leave it 0700).
DIR_MODE = 0o755
EXEC_MODE = 0o755
FILE_MODE = 0o644


@dataclass(frozen=True, slots=True)
class Project:
    """A generated project."""

    name: str
    module: str
    directory: Path
    files: tuple[str, ...]

    @property
    def launcher(self) -> Path:
        return self.directory / f"{EXECUTABLE_PREFIX}{self.name}"

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "module": self.module,
            "directory": str(self.directory),
            "launcher": str(self.launcher),
            "files": list(self.files),
        }


def module_name(name: str) -> str:
    """The Python package of provider ``name``: ``dso_provider_<name>`` with ``-`` as ``_``."""
    return "dso_provider_" + name.replace("-", "_")


def _class_name(name: str) -> str:
    words = name.replace("-", "_").split("_")
    return "".join(word[:1].upper() + word[1:] for word in words if word) + "Provider"


def _fixture() -> str:
    doc = {
        "settings": {"directory": SEED_DIR},
        "secrets": [
            {"path": "app/db_password", "value": SEED["app/db_password"].decode()},
            {"path": "app/config", "field": "user", "value": "app"},
            {"path": "app/config", "field": "port", "value": "5432"},
        ],
        "missing": "app/does-not-exist",
    }
    return json.dumps(doc, indent=2) + "\n"


def _values(name: str) -> dict[str, str]:
    # The Python that runs dso has the SDK: the launcher falls back to it (not when frozen).
    python = "" if getattr(sys, "frozen", False) else shlex.quote(sys.executable)
    return {
        "{{name}}": name,
        "{{module}}": module_name(name),
        "{{class_name}}": _class_name(name),
        "{{dso_version}}": __version__,
        "{{python}}": python,
    }


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def scaffold(name: str, directory: Path) -> Project:
    """Create the project of provider ``name`` at ``directory`` (which must not exist)."""
    if NAME_PATTERN.fullmatch(name) is None:
        raise UsageError(
            f"{name!r} is not a provider name: it must match [a-z][a-z0-9_-]{{0,62}}"
            " (it becomes dso-provider-<name> and the provider's key in dso.yaml)"
        )
    directory = directory.expanduser().absolute()
    if directory.exists() or directory.is_symlink():
        raise UsageError(
            f"{directory} already exists; nothing was written",
            hint="choose another place with --dir, or remove it first",
        )
    values = _values(name)
    templates = resources.files(__package__).joinpath("templates")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    except OSError as exc:
        raise StorageError(f"cannot create {directory}: {exc.strerror or exc}") from None
    written: list[str] = []
    try:
        for template, target, executable in TEMPLATES:
            relative = _fill(target, values)
            text = _fill(templates.joinpath(template).read_text(encoding="utf-8"), values)
            _write(staging / relative, text.encode("utf-8"), executable)
            written.append(relative)
        _write(staging / "conformance" / "fixture.json", _fixture().encode(), False)
        written.append("conformance/fixture.json")
        for path, value in SEED.items():
            _write(staging / SEED_DIR / path, value, False)
            written.append(f"{SEED_DIR}/{path}")
        os.chmod(staging, DIR_MODE)
        os.rename(staging, directory)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise StorageError(
            f"cannot create {directory}: {exc.strerror or exc}; nothing was left"
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Project(name, module_name(name), directory, tuple(sorted(written)))


def _write(path: Path, data: bytes, executable: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(EXEC_MODE if executable else FILE_MODE)
