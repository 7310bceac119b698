"""docs/configuration.md cannot drift from the schema: every key, type, default and example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kernel.config import CREDENTIAL_KEYS, SCHEMA, Config, FieldType, check_config, iter_fields
from kernel.config.schema import Field, default_text
from kernel.config.units import DURATION_UNITS, SIZE_SUFFIXES

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
DOC = DOC_PATH.read_text()
KEYS = list(iter_fields())


def row(dotted: str) -> str | None:
    """The table row documenting ``dotted``, if any."""
    for line in DOC.splitlines():
        if line.startswith(f"| `{dotted}` |"):
            return line
    return None


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC, flags=re.DOTALL)


def test_the_schema_has_keys() -> None:
    assert len(KEYS) > 20
    assert SCHEMA.type is FieldType.SECTION


@pytest.mark.parametrize(("dotted", "spec"), KEYS, ids=[k for k, _ in KEYS])
def test_every_key_is_documented(dotted: str, spec: Field) -> None:
    line = row(dotted)
    assert line is not None, f"docs/configuration.md has no table row for `{dotted}`"
    cells = [cell.strip() for cell in line.strip("|").split(" | ")]
    assert len(cells) == 4, line
    _, kind, default, description = cells
    if spec.choices:
        assert kind == " \\| ".join(f"`{c}`" for c in spec.choices), line
    else:
        assert kind == spec.type.value, line
    if spec.required:
        assert default == "required", line
    elif spec.default is not None:
        assert default == f"`{default_text(spec)}`", line
    else:
        assert default == "—", line
    assert description, line


def test_no_documented_key_is_missing_from_the_schema() -> None:
    documented = re.findall(r"^\| `([a-z_<>.]+)` \|", DOC, flags=re.MULTILINE)
    known = {dotted for dotted, _ in KEYS}
    assert set(documented) <= known, set(documented) - known


def test_credential_names_are_documented() -> None:
    for name in CREDENTIAL_KEYS:
        assert f"`{name}`" in DOC, name


def test_units_are_documented() -> None:
    for unit in [*DURATION_UNITS, *SIZE_SUFFIXES]:
        assert f"`{unit}`" in DOC, unit


@pytest.mark.parametrize(
    "heading",
    [
        "## Lookup order",
        "## Environment variables",
        "## File permissions",
        "## Units",
        "## Keys",
        "## Full example",
    ],
)
def test_sections(heading: str) -> None:
    assert heading in DOC


def test_lookup_order_is_documented_in_order() -> None:
    section = DOC[DOC.index("## Lookup order") :]
    positions = [
        section.index(s)
        for s in ["`-c`/`--config`", "`/etc/dso/dso.yaml`", "`~/.dso/config.yaml`", "`./dso.yaml`"]
    ]
    assert positions == sorted(positions)


def test_every_yaml_example_is_valid(tmp_path: Path) -> None:
    blocks = yaml_blocks()
    assert len(blocks) >= 2
    env = {
        "VAULT_TOKEN": "t",
        "AZURE_CLIENT_SECRET": "s",
        "DSO_WEBHOOK_SECRET": "w",
        "DSO_AGENT_WEBHOOK_TOKEN": "a",
        "DSO_AGENT_WEBHOOK_HMAC": "h",
    }
    for index, block in enumerate(blocks):
        path = tmp_path / f"example-{index}.yaml"
        path.write_text(block)
        path.chmod(0o600)
        report = check_config(path, candidates=[], env=env)
        assert report.valid, [str(e) for e in report.errors]
        assert report.warnings == ()


def test_the_init_example_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "init.yaml"
    path.write_text(yaml_blocks()[0])
    path.chmod(0o600)
    assert check_config(path, candidates=[]).config == Config.default()


def test_the_full_example_uses_every_fixed_key(tmp_path: Path) -> None:
    full = yaml_blocks()[-1]
    for dotted, spec in KEYS:
        if "<" in dotted or spec.type in (FieldType.SECTION, FieldType.MAP):
            continue
        assert re.search(rf"^\s*{dotted.split('.')[-1]}:", full, flags=re.MULTILINE), dotted
