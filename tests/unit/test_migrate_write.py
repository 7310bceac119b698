"""Writing migrate's new files: outputs never replace originals, and a failure undoes them."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from kernel.compose.migrate_write import Outputs, check_outputs, default_output
from kernel.errors import StorageError, UsageError


@pytest.mark.parametrize(
    ("name", "output"),
    [
        ("compose.yaml", "compose.dso.yaml"),
        ("docker-compose.yml", "docker-compose.dso.yaml"),
        ("stack", "stack.dso.yaml"),
        (".yaml", ".yaml.dso.yaml"),
    ],
)
def test_default_output(name: str, output: str) -> None:
    assert default_output(Path("/p") / name) == Path("/p") / output


def test_check_outputs(tmp_path: Path) -> None:
    source = tmp_path / "compose.yaml"
    source.write_text("services: {}\n")
    existing = tmp_path / "old.yaml"
    existing.write_text("x")
    (tmp_path / "adir").mkdir()
    link = tmp_path / "link.yaml"
    link.symlink_to(source)

    def problems(output: Path, *, force: bool = False) -> list[str]:
        found = check_outputs({source: output}, [source], force=force, show=lambda p: p.name)
        return [p.message for p in found]

    assert problems(tmp_path / "new.yaml") == []
    assert problems(existing) == ["old.yaml already exists; it is not overwritten"]
    assert problems(existing, force=True) == []
    assert problems(source, force=True) == [
        "compose.yaml is one of the project's own files; it is never overwritten"
    ]
    assert problems(link, force=True) == [
        "link.yaml is one of the project's own files; it is never overwritten"
    ]
    assert problems(tmp_path / "adir") == ["adir is a directory"]
    assert problems(tmp_path / "missing" / "x.yaml") == [
        "cannot write x.yaml: its directory does not exist"
    ]
    two = check_outputs(
        {source: tmp_path / "o.yaml", tmp_path / "b.yaml": tmp_path / "o.yaml"},
        [],
        force=False,
        show=lambda p: p.name,
    )
    assert [p.message for p in two] == ["b.yaml and compose.yaml would both go to o.yaml"]


def test_commit_then_finish_leaves_only_the_new_files(tmp_path: Path) -> None:
    out = tmp_path / "a.dso.yaml"
    outputs = Outputs({out: ("new: 1\n", 0o640)})
    outputs.stage()
    outputs.commit()
    outputs.finish()
    assert out.read_text() == "new: 1\n"
    assert out.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dso.yaml"]


def test_rollback_restores_a_replaced_file(tmp_path: Path) -> None:
    old = tmp_path / "a.dso.yaml"
    old.write_text("old\n")
    fresh = tmp_path / "b.dso.yaml"
    outputs = Outputs({old: ("new\n", 0o644), fresh: ("new\n", 0o644)}, force=True)
    outputs.stage()
    outputs.commit()
    assert old.read_text() == "new\n"
    outputs.rollback()
    assert old.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dso.yaml"]


def test_a_file_that_appears_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    first, second = tmp_path / "a.dso.yaml", tmp_path / "b.dso.yaml"
    outputs = Outputs({first: ("new\n", 0o644), second: ("new\n", 0o644)})
    outputs.stage()
    second.write_text("someone else's\n")
    with pytest.raises(UsageError, match=r"b\.dso\.yaml appeared meanwhile; nothing was changed"):
        outputs.commit()
    assert not first.exists()
    assert second.read_text() == "someone else's\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.dso.yaml"]


def test_a_write_error_fails_at_staging_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object, **kwargs: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    first = tmp_path / "a.dso.yaml"
    outputs = Outputs({first: ("x", 0o644), tmp_path / "b.dso.yaml": ("y", 0o644)})
    real_open = os.open
    calls: list[object] = []

    def second_fails(path: object, *args: object, **kwargs: object) -> int:
        calls.append(path)
        if len(calls) == 2:
            return full()
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", second_fails)
    with pytest.raises(StorageError) as caught:
        outputs.stage()
    assert caught.value.message == (
        f"could not write {tmp_path / 'b.dso.yaml'}: no space left on device; nothing was changed"
    )
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []
