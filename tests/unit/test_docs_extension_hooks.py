"""docs/extension-hooks.md cannot drift: every hook documented and tested, the example runs."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from kernel.extensions import (
    DIRECTORY_ENV,
    DISABLE_ENV,
    HOOK_METHODS,
    NO_EXTENSIONS_ENV,
    ExtensionManager,
    Extensions,
    RotationEvent,
    Veto,
    hookspecs,
)
from kernel.extensions.builtin.webhook import SIGNATURE_HEADER
from kernel.paths import local_layout
from tests.unit.extensions_support import TRACE_ID, make_event, receiver

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "extension-hooks.md").read_text()
EXAMPLES = ROOT / "examples" / "extensions"
HOOKS = sorted(name for name in vars(hookspecs) if name.startswith("dso_"))


def test_the_hookspecs_are_the_ones_pluggy_knows() -> None:
    pm = ExtensionManager().pm
    specified = sorted(
        name for name in vars(pm.hook) if not name.startswith("_") and pm.hook.__dict__[name].spec
    )
    assert specified == HOOKS
    assert len(HOOKS) >= 8


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook: str) -> None:
    assert f"### `{hook}`" in DOC, f"document {hook} in docs/extension-hooks.md"
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"{hook} needs a docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_facade_method_and_a_test_calling_it(hook: str) -> None:
    assert hook in HOOK_METHODS, f"add {hook} to HOOK_METHODS and a method to Extensions"
    method = HOOK_METHODS[hook]
    assert callable(getattr(Extensions, method))
    sources = "".join(p.read_text() for p in (ROOT / "tests" / "unit").glob("test_extensions_*"))
    assert f"extensions.{method}(" in sources, f"no test calls Extensions.{method}()"


def test_no_documented_hook_is_missing_from_the_specs() -> None:
    documented = set(re.findall(r"^### `(dso_\w+)`", DOC, flags=re.MULTILINE))
    assert documented == set(HOOKS)
    assert set(HOOK_METHODS) == set(HOOKS)


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(RotationEvent)])
def test_every_event_field_is_documented(name: str) -> None:
    assert f"| `{name}` |" in DOC


@pytest.mark.parametrize(
    "text",
    [
        DISABLE_ENV,
        NO_EXTENSIONS_ENV,
        DIRECTORY_ENV,
        SIGNATURE_HEADER,
        "X-DSO-Event",
        "X-DSO-Trace-Id",
        "X-DSO-Timestamp",
        "X-DSO-Delivery",
        "[project.entry-points.dso]",
        "firstresult",
        "ExtensionError",
    ],
)
def test_loading_and_notifications_are_documented(text: str) -> None:
    assert text in DOC


def test_the_documented_example_is_the_shipped_file() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC, flags=re.DOTALL)
    assert (EXAMPLES / "slack_notify.py").read_text() in blocks


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    """The examples, installed as a user would: an owner-only directory of 0644 files."""
    target = tmp_path / "extensions"
    target.mkdir(mode=0o700)
    for source in EXAMPLES.glob("*.py"):
        shutil.copy(source, target / source.name)
        (target / source.name).chmod(0o644)
    return target


def test_the_slack_example_posts_when_rotations_end(
    example_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DSO_CHANGE_FREEZE_FILE", str(tmp_path / "no-freeze"))
    layout = local_layout(tmp_path / "home")
    with receiver() as rx:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", rx.url)
        extensions = Extensions.load(layout, env={}, directory=example_dir)
        assert {"slack_notify", "change_freeze"} <= set(extensions.names)
        event = make_event()
        extensions.planned(event)  # not a Slack message
        extensions.completed(event.evolve(step="done"))
        extensions.rolled_back(event.evolve(vetoed_by="change_freeze", error="release week"))
        extensions.shutdown()
        texts = [json.loads(r.body)["text"] for r in rx.requests]
    assert len(texts) == 2
    assert texts[0].startswith(":white_check_mark: dso rotation of *web* completed (rolling")
    assert "dso://vault/app/db#password" in texts[0]
    assert f"trace id `{TRACE_ID}`" in texts[0]
    assert "rolled back" in texts[1] and "vetoed by `change_freeze`" in texts[1]


def test_the_change_freeze_example_vetoes_while_the_file_exists(
    example_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    freeze = tmp_path / "change-freeze"
    monkeypatch.setenv("DSO_CHANGE_FREEZE_FILE", str(freeze))
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    extensions = Extensions.load(local_layout(tmp_path / "home"), env={}, directory=example_dir)
    assert extensions.before_swap(make_event()) is None
    freeze.write_text("release week\n")
    assert extensions.before_swap(make_event()) == Veto(
        "change_freeze", f"change freeze ({freeze}): release week"
    )
