"""Discovery and validation: builtins, entry points, the directory, blocking, typos, refusals."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest

from kernel.config import ExtensionsConfig, WebhookConfig
from kernel.errors import ExitCode, ExtensionError
from kernel.extensions import ExtensionManager, Extensions, ExtensionStatus, load_extensions
from kernel.paths import Layout, local_layout
from kernel.secret_value import SecretValue
from tests.conftest import RunDso
from tests.unit.extensions_support import make_event, write_extension

GOOD = """
from kernel import hookimpl

seen = []

@hookimpl
def dso_rotation_completed(event):
    seen.append(event.trace_id)

@hookimpl
def dso_before_swap(event):
    return None
"""

TYPO = """
from kernel import hookimpl

@hookimpl
def dso_befor_swap(event):
    return "never asked"
"""


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return local_layout(tmp_path / "dso-home")


@pytest.fixture
def ext_dir(tmp_path: Path) -> Path:
    path = tmp_path / "extensions"
    path.mkdir(mode=0o700)
    return path


def load(
    layout: Layout,
    ext_dir: Path,
    env: dict[str, str] | None = None,
    *,
    config: ExtensionsConfig | None = None,
    strict: bool = True,
) -> ExtensionManager:
    return load_extensions(layout, config, env=env or {}, directory=ext_dir, strict=strict)


def statuses(manager: ExtensionManager) -> dict[str, tuple[str, str]]:
    return {r.name: (r.source, r.status.value) for r in manager.records}


def test_defaults_are_the_audit_log_only(layout: Layout, ext_dir: Path) -> None:
    manager = load(layout, ext_dir)
    assert statuses(manager) == {
        "audit": ("builtin", "enabled"),
        "webhook": ("builtin", "disabled"),
    }
    assert manager.record("webhook").reason == "extensions.webhook.url is not set"  # type: ignore[union-attr]
    assert "dso_rotation_completed" in manager.record("audit").hooks  # type: ignore[union-attr]


def test_the_webhook_is_enabled_by_its_configuration(layout: Layout, ext_dir: Path) -> None:
    config = ExtensionsConfig(
        webhook=WebhookConfig(url="https://hooks.example.com/dso", secret=SecretValue("k"))
    )
    manager = load(layout, ext_dir, config=config)
    assert statuses(manager)["webhook"] == ("builtin", "enabled")


def test_directory_extensions_are_loaded_and_called(layout: Layout, ext_dir: Path) -> None:
    write_extension(ext_dir, "hello", GOOD)
    write_extension(ext_dir, "_helper", "raise RuntimeError('helpers are not extensions')")
    (ext_dir / "notes.txt").write_text("ignored")
    extensions = Extensions.load(layout, env={}, directory=ext_dir)
    assert extensions.names == ["audit", "hello"]
    record = extensions.manager.record("hello")
    assert record is not None
    assert (record.source, record.location) == ("directory", str(ext_dir / "hello.py"))
    assert record.hooks == ("dso_before_swap", "dso_rotation_completed")
    extensions.completed(make_event())
    module = extensions.manager.pm.get_plugin("hello")
    assert module.seen == [make_event().trace_id]


def test_a_typo_in_a_hook_name_fails_loading_naming_the_extension(
    layout: Layout, ext_dir: Path
) -> None:
    write_extension(ext_dir, "freeze", TYPO)
    with pytest.raises(ExtensionError) as info:
        load(layout, ext_dir)
    message = str(info.value)
    assert "freeze (directory" in message
    assert "unknown hook 'dso_befor_swap' (did you mean 'dso_before_swap'?)" in message
    assert "DSO_DISABLE_EXTENSIONS" in message
    assert info.value.exit_code == ExitCode.CONFIG
    # Not strict (`extensions list`): recorded, not registered, the rest still loads.
    manager = load(layout, ext_dir, strict=False)
    assert statuses(manager)["freeze"] == ("directory", "failed")
    assert manager.pm.get_plugin("freeze") is None


def test_check_pending_backs_up_the_per_extension_check() -> None:
    manager = ExtensionManager()

    class Sneaky:
        from kernel import hookimpl

        @hookimpl
        def dso_rotation_complete(self, event: object) -> None: ...

    manager.pm.register(Sneaky(), name="sneaky")  # bypassing add(): only check_pending sees it
    with pytest.raises(ExtensionError, match="extension 'sneaky': unknown hook"):
        manager.check()


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("x = 1 / 0", "import failed: ZeroDivisionError"),
        ("import kernel\n", "implements no dso hook"),
        (
            "from kernel import hookimpl\n@hookimpl\ndef dso_after_swap(event, secret): pass\n",
            "can not be found in the hookspec",
        ),
        (
            "from kernel import hookimpl\n@hookimpl(wrapper=True)\n"
            "def dso_after_swap(event):\n    return (yield)\n",
            "hook wrappers are not supported",
        ),
    ],
    ids=["import-error", "no-hooks", "bad-argument", "wrapper"],
)
def test_broken_extensions_are_recorded_with_the_reason(
    layout: Layout, ext_dir: Path, source: str, reason: str
) -> None:
    write_extension(ext_dir, "broken", source)
    write_extension(ext_dir, "hello", GOOD)
    manager = load(layout, ext_dir, strict=False)
    record = manager.record("broken")
    assert record is not None and record.status is ExtensionStatus.FAILED
    assert reason in record.reason
    assert manager.record("hello").status is ExtensionStatus.ENABLED  # type: ignore[union-attr]
    with pytest.raises(ExtensionError, match="broken"):
        manager.check()


@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_files_writable_by_others_are_refused(layout: Layout, ext_dir: Path, mode: int) -> None:
    path = write_extension(ext_dir, "hello", GOOD)
    path.chmod(mode)
    manager = load(layout, ext_dir, strict=False)
    record = manager.record("hello")
    assert record is not None and record.status is ExtensionStatus.FAILED
    assert "group- or world-writable" in record.reason
    assert manager.pm.get_plugin("hello") is None


def test_a_writable_directory_is_refused(layout: Layout, ext_dir: Path) -> None:
    write_extension(ext_dir, "hello", GOOD)
    ext_dir.chmod(0o777)
    manager = load(layout, ext_dir, strict=False)
    assert str(ext_dir) in manager.record("hello").reason  # type: ignore[union-attr]


def test_a_name_is_loaded_once_and_a_taken_one_is_not_even_imported(
    layout: Layout, ext_dir: Path
) -> None:
    write_extension(ext_dir, "audit", "raise RuntimeError('must not run')")
    manager = load(layout, ext_dir, strict=False)
    records = [r for r in manager.records if r.name == "audit"]
    assert [(r.source, r.status.value) for r in records] == [
        ("builtin", "enabled"),
        ("directory", "failed"),
    ]
    assert "already used by the builtin extension" in records[1].reason


def test_disable_env_blocks_by_name_builtins_included(layout: Layout, ext_dir: Path) -> None:
    write_extension(ext_dir, "hello", GOOD)
    write_extension(ext_dir, "freeze", TYPO)  # blocked, so its typo does not matter
    env = {"DSO_DISABLE_EXTENSIONS": "freeze, audit"}
    manager = load(layout, ext_dir, env)
    assert statuses(manager) == {
        "audit": ("builtin", "blocked"),
        "webhook": ("builtin", "disabled"),
        "freeze": ("directory", "blocked"),
        "hello": ("directory", "enabled"),
    }
    assert manager.record("freeze").reason == "listed in DSO_DISABLE_EXTENSIONS"  # type: ignore[union-attr]


def test_no_extensions_env_skips_every_third_party_one(layout: Layout, ext_dir: Path) -> None:
    write_extension(ext_dir, "freeze", TYPO)
    manager = load(layout, ext_dir, {"DSO_NO_EXTENSIONS": "1"})
    assert statuses(manager) == {
        "audit": ("builtin", "enabled"),
        "webhook": ("builtin", "disabled"),
    }
    assert manager.directory is None
    assert load(layout, ext_dir, {"DSO_NO_EXTENSIONS": "0"}, strict=False).failures


def test_the_directory_comes_from_env_then_config_then_layout(
    layout: Layout, ext_dir: Path, tmp_path: Path
) -> None:
    from kernel.extensions import extensions_dir

    config = ExtensionsConfig(directory=tmp_path / "configured")
    assert extensions_dir(layout, None, {}) == layout.root / "extensions"
    assert extensions_dir(layout, config, {}) == tmp_path / "configured"
    env = {"DSO_EXTENSIONS_DIR": str(ext_dir)}
    assert extensions_dir(layout, config, env) == ext_dir
    write_extension(ext_dir, "hello", GOOD)
    manager = load_extensions(layout, config, env=env)
    assert manager.directory == ext_dir and "hello" in manager.enabled()


def _dist(site: Path, dist: str, entry_points: str) -> None:
    info = site / f"{dist}-1.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_entry_point_extensions_are_loaded(
    layout: Layout, ext_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    module = f"dso_ep_{uuid.uuid4().hex[:8]}"
    site.mkdir()
    (site / f"{module}.py").write_text(GOOD)
    broken = f"{module}_broken"
    (site / f"{broken}.py").write_text("raise ImportError('missing dependency: slack_sdk')")
    _dist(site, "dso-ext-demo", f"[dso]\ndemo = {module}\nbroken_demo = {broken}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, module, raising=False)
    manager = load(layout, ext_dir, strict=False)
    demo = manager.record("demo")
    assert demo is not None and demo.status is ExtensionStatus.ENABLED
    assert demo.source == "entry-point"
    assert demo.location == f"dso-ext-demo 1.2 ({module})"
    assert demo.hooks == ("dso_before_swap", "dso_rotation_completed")
    failed = manager.record("broken_demo")
    assert failed is not None and failed.status is ExtensionStatus.FAILED
    assert "missing dependency: slack_sdk" in failed.reason
    extensions = Extensions(manager)
    extensions.completed(make_event())
    assert sys.modules[module].seen == [make_event().trace_id]
    blocked = load(layout, ext_dir, {"DSO_DISABLE_EXTENSIONS": "demo,broken_demo"})
    assert statuses(blocked)["demo"] == ("entry-point", "blocked")


def test_extensions_list_json(run_dso: RunDso, dso_home: Path, tmp_path: Path) -> None:
    ext_dir = tmp_path / "ext"
    write_extension(ext_dir, "hello", GOOD)
    result = run_dso("extensions", "list", "--json", env={"DSO_EXTENSIONS_DIR": str(ext_dir)})
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["directory"] == str(ext_dir)
    by_name = {e["name"]: e for e in doc["extensions"]}
    assert by_name["hello"] == {
        "name": "hello",
        "source": "directory",
        "location": str(ext_dir / "hello.py"),
        "status": "enabled",
        "enabled": True,
        "reason": None,
        "hooks": ["dso_before_swap", "dso_rotation_completed"],
    }
    assert by_name["webhook"]["enabled"] is False
    assert by_name["webhook"]["reason"] == "extensions.webhook.url is not set"


def test_extensions_list_text_shows_failures_and_exits_3(
    run_dso: RunDso, dso_home: Path, tmp_path: Path
) -> None:
    ext_dir = tmp_path / "ext"
    write_extension(ext_dir, "freeze", TYPO)
    env = {"DSO_EXTENSIONS_DIR": str(ext_dir)}
    result = run_dso("extensions", "list", env=env)
    assert result.exit_code == ExitCode.CONFIG
    assert f"extensions directory: {ext_dir}" in result.stdout
    lines = result.stdout.splitlines()
    assert any(line.split()[:3] == ["freeze", "directory", "failed"] for line in lines)
    assert "freeze: failed: unknown hook 'dso_befor_swap'" in result.stdout
    blocked = run_dso("extensions", "list", env={**env, "DSO_DISABLE_EXTENSIONS": "freeze"})
    assert blocked.exit_code == 0, blocked.output
    assert "freeze: blocked: listed in DSO_DISABLE_EXTENSIONS" in blocked.stdout
